"""Outgoing webhook endpoints and their deliveries: admins and integration keys with
``webhooks:manage`` (``api/scopes.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api import examples as ex
from api import integration_examples as ix
from api.deps import DEFAULT_PAGE_LIMIT, Limit, Offset, SessionDep, SettingsDep, ViewerDep
from api.schemas.common import BODY_PROBLEMS, ListPage, json_answer, problem_responses
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

router = APIRouter(prefix="/webhook-endpoints", tags=["webhook endpoints"])
deliveries_router = APIRouter(prefix="/webhook-deliveries", tags=["webhook endpoints"])


def _admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("only admins and integration keys with webhooks:manage manage webhooks")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointCreated,
    summary="Subscribe a webhook endpoint",
    description=(
        "An https URL whose host resolves only to public addresses, and the event types it "
        "receives (`order.*` is a wildcard). Its signing `secret` (`whsec_…`) is shown only "
        "here. Admins and keys with `webhooks:manage`."
    ),
    responses={
        **json_answer(201, "The endpoint, with its secret", endpoint=ix.ENDPOINT_CREATED),
        **problem_responses(*BODY_PROBLEMS, 401, 403),
    },
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


@router.get(
    "",
    response_model=ListPage[EndpointOut],
    summary="List webhook endpoints",
    description=(
        "Every endpoint, newest first, with its status (`enabled`, `paused`, or `disabled` by "
        "the system with a `disabled_reason`); never a secret."
    ),
    responses={
        **json_answer(200, "A page of endpoints", page=ex.page(ix.ENDPOINT)),
        **problem_responses(401, 403),
    },
)
def list_endpoints(
    viewer: ViewerDep, session: SessionDep, limit: Limit = DEFAULT_PAGE_LIMIT, offset: Offset = 0
) -> ListPage[EndpointOut]:
    _admin_only(viewer)
    page = endpoints.list_endpoints(session, limit, offset)
    items = [EndpointOut.of(endpoint) for endpoint in page.items]
    return ListPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="Get a webhook endpoint",
    description="One endpoint by id: its URL, event types and status; never its secret.",
    responses={
        **json_answer(200, "The endpoint", endpoint=ix.ENDPOINT),
        **problem_responses(401, 403, 404),
    },
)
def get_endpoint(endpoint_id: str, viewer: ViewerDep, session: SessionDep) -> EndpointOut:
    _admin_only(viewer)
    return EndpointOut.of(endpoints.get_endpoint(session, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="Change a webhook endpoint",
    description=(
        "Change `url`, `event_types`, `description` or `status` (`enabled` or `paused`; "
        "re-enabling a disabled endpoint resumes its open deliveries)."
    ),
    responses={
        **json_answer(200, "The endpoint", endpoint=ix.ENDPOINT),
        **problem_responses(*BODY_PROBLEMS, 401, 403, 404),
    },
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
    summary="Delete a webhook endpoint",
    description="The endpoint and its delivery log are deleted; nothing more is sent to it.",
    responses={204: {"description": "Deleted"}, **problem_responses(401, 403, 404)},
)
def delete_endpoint(endpoint_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    _admin_only(viewer)
    endpoints.delete_endpoint(session, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=SecretOut,
    summary="Rotate a webhook endpoint's secret",
    description=(
        "A new signing secret, shown only here. For 24 hours every delivery carries both "
        "signatures, so the receiver can switch without missing one."
    ),
    responses={
        **json_answer(
            200,
            "The new secret",
            secret={
                "secret": ix.ENDPOINT_CREATED["secret"],
                "previous_secret_expires_at": ex.UPDATED,
            },
        ),
        **problem_responses(401, 403, 404),
    },
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
    summary="List an endpoint's deliveries",
    description=(
        "The delivery log, newest first: each event sent (or to send) to the endpoint with "
        "its status, attempts, last answer and next attempt; `status` filters."
    ),
    responses={
        **json_answer(200, "A page of deliveries", page=ex.page(ix.DELIVERY)),
        **problem_responses(401, 403, 404),
    },
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
    summary="Replay a window of events",
    description=(
        "Send the endpoint again the events of [`since`, `until`) it subscribes to (and of "
        "`types`, if given), with their original ids, in order per subject."
    ),
    responses={
        **json_answer(202, "How many deliveries were queued", replay={"deliveries": 12}),
        **problem_responses(*BODY_PROBLEMS, 401, 403, 404),
    },
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
    summary="Retry a delivery",
    description=(
        "Send a failed or exhausted delivery again now, in its turn for its subject. A "
        "delivery answered 2xx is not sent again (409): replay its event instead."
    ),
    responses={
        **json_answer(202, "The delivery, due now", delivery=ix.DELIVERY),
        **problem_responses(401, 403, 404, 409),
    },
)
def retry_delivery(delivery_id: str, viewer: ViewerDep, session: SessionDep) -> DeliveryOut:
    _admin_only(viewer)
    number = delivery_id.removeprefix("whd_")
    if not delivery_id.startswith("whd_") or not number.isdigit() or len(number) > 18:
        raise NotFound(f"webhook delivery {delivery_id} does not exist")
    return DeliveryOut.of(endpoints.retry_delivery(session, int(number)))
