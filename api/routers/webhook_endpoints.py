"""Outgoing webhook endpoints and their deliveries: admins and integration keys with
``webhooks:manage`` (``api/scopes.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import DEFAULT_PAGE_LIMIT, Limit, Offset, SessionDep, SettingsDep, ViewerDep
from api.schemas.common import BODY_PROBLEMS, ListPage, problem_responses
from api.schemas.webhooks_out import (
    DeliveryOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointPatch,
    ReplayOut,
    ReplayRequest,
    SecretOut,
)
from orderflow.errors import Forbidden, NotFound, Unprocessable
from orderflow.orders.service import Viewer
from orderflow.webhooks import endpoints
from orderflow.webhooks.endpoints import DeliveryStatus

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"])
deliveries_router = APIRouter(prefix="/webhook-deliveries", tags=["webhooks"])


def _admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("only admins and integration keys with webhooks:manage manage webhooks")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointCreated,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403),
)
def create_endpoint(
    body: EndpointCreate, viewer: ViewerDep, session: SessionDep, settings: SettingsDep
) -> EndpointCreated:
    _admin_only(viewer)
    created = endpoints.create_endpoint(
        session,
        body.url,
        body.event_types,
        body.description,
        allow_private=settings.webhook_allow_private_urls,
    )
    return EndpointCreated(**EndpointOut.of(created.endpoint).model_dump(), secret=created.secret)


@router.get("", response_model=ListPage[EndpointOut], responses=problem_responses(401, 403))
def list_endpoints(
    viewer: ViewerDep, session: SessionDep, limit: Limit = DEFAULT_PAGE_LIMIT, offset: Offset = 0
) -> ListPage[EndpointOut]:
    _admin_only(viewer)
    page = endpoints.list_endpoints(session, limit, offset)
    items = [EndpointOut.of(endpoint) for endpoint in page.items]
    return ListPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get(
    "/{endpoint_id}", response_model=EndpointOut, responses=problem_responses(401, 403, 404)
)
def get_endpoint(endpoint_id: str, viewer: ViewerDep, session: SessionDep) -> EndpointOut:
    _admin_only(viewer)
    return EndpointOut.of(endpoints.get_endpoint(session, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 404),
)
def update_endpoint(
    endpoint_id: str,
    body: EndpointPatch,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> EndpointOut:
    _admin_only(viewer)
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "status"):
        if name in changes and changes[name] is None:
            raise Unprocessable(
                f"{name} may not be null", errors=[{"field": name, "message": "not null"}]
            )
    endpoint = endpoints.update_endpoint(
        session, endpoint_id, changes, allow_private=settings.webhook_allow_private_urls
    )
    return EndpointOut.of(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
def delete_endpoint(endpoint_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    _admin_only(viewer)
    endpoints.delete_endpoint(session, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=SecretOut,
    responses=problem_responses(401, 403, 404),
)
def rotate_secret(endpoint_id: str, viewer: ViewerDep, session: SessionDep) -> SecretOut:
    _admin_only(viewer)
    secret = endpoints.rotate_secret(session, endpoint_id)
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    session.refresh(endpoint)
    return SecretOut(secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=ListPage[DeliveryOut],
    responses=problem_responses(401, 403, 404),
)
def list_deliveries(
    endpoint_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    offset: Offset = 0,
) -> ListPage[DeliveryOut]:
    _admin_only(viewer)
    page = endpoints.list_deliveries(session, endpoint_id, status_, limit, offset)
    items = [DeliveryOut.of(delivery) for delivery in page.items]
    return ListPage(items=items, total=page.total, limit=limit, offset=offset)


@router.post(
    "/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 404),
)
def replay(
    endpoint_id: str, body: ReplayRequest, viewer: ViewerDep, session: SessionDep
) -> ReplayOut:
    _admin_only(viewer)
    count = endpoints.replay(session, endpoint_id, body.since, body.until, body.types)
    return ReplayOut(deliveries=count)


@deliveries_router.post(
    "/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=problem_responses(401, 403, 404, 409),
)
def retry_delivery(delivery_id: str, viewer: ViewerDep, session: SessionDep) -> DeliveryOut:
    _admin_only(viewer)
    number = delivery_id.removeprefix("whd_")
    if not delivery_id.startswith("whd_") or not number.isdigit() or len(number) > 18:
        raise NotFound(f"webhook delivery {delivery_id} does not exist")
    return DeliveryOut.of(endpoints.retry_delivery(session, int(number)))
