"""Shipments of an order, their tracking updates and cancellation (DESIGN.md, "Shipments and
shipping status"). Thin: parse, call one service of ``fulfilment.shipping``, serialise."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import examples as ex
from api.deps import DEFAULT_PAGE_LIMIT, Limit, Offset, SessionDep, SettingsDep, ViewerDep
from api.idempotent import IdempotencyKeyHeader, answer_of, created, keyed_request
from api.schemas.common import (
    BODY_PROBLEMS,
    ListPage,
    json_answer,
    problem_example,
    problem_responses,
)
from api.schemas.shipments import ShipmentCreate, ShipmentOut, TrackingEventIn
from orderflow import idempotency
from orderflow.errors import NotFound
from orderflow.fulfilment import shipping
from orderflow.fulfilment.packing import NewShipment, ShipmentLineRequest
from orderflow.models import Shipment
from orderflow.shipments.repository import ShipmentRepository, TrackingUpdate

orders_router = APIRouter(prefix="/orders", tags=["shipments"])
router = APIRouter(prefix="/shipments", tags=["shipments"])

_OWNER_OR_ADMIN = " The order's customer or an admin; anyone else gets 404."
_NO_ORDER = {
    404: {
        "no-order": problem_example(
            404, "not-found", "Not found", f"order {ex.ORDER_ID} does not exist"
        )
    }
}
_NO_SHIPMENT = {
    404: {
        "no-shipment": problem_example(
            404, "not-found", "Not found", f"shipment {ex.SHIPMENT_ID} does not exist"
        )
    }
}
_ADMINS = {
    403: {
        "not-admin": problem_example(
            403, "forbidden", "Forbidden", "only admins may change shipments"
        )
    }
}
_SHIPMENT_EXAMPLES = {
    "own-tracking": {
        "summary": "Two units, with a tracking number of our own",
        "value": ex.SHIPMENT_REQUEST,
    },
    "buy-label": {
        "summary": "Everything left, the label bought from the shipping provider",
        "value": {"buy_label": True},
    },
}


def _render_created(session: Session, shipment: Shipment) -> idempotency.StoredResponse:
    session.flush()
    session.refresh(shipment)
    return created(ShipmentOut.of(shipment).model_dump(mode="json"), f"/shipments/{shipment.id}")


@orders_router.post(
    "/{order_id}/shipments",
    status_code=status.HTTP_201_CREATED,
    response_model=ShipmentOut,
    summary="Ship an order (admin)",
    description=(
        "A shipment of a confirmed order: `lines` (product and quantity) or, omitted, every "
        "unit not yet in a shipment. With `tracking_number` it starts `label_created`; with "
        "`buy_label` the label is bought from the shipping provider in the background. 409 "
        "when the order is not confirmed, a line would ship more than is left of it, or "
        "nothing is left; 422 for a product the order does not have. `Idempotency-Key` as "
        "for `POST /orders`."
    ),
    responses={
        **json_answer(201, "The shipment, created", created=ex.NEW_SHIPMENT),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            404,
            409,
            examples={
                **_NO_ORDER,
                **_ADMINS,
                409: {
                    "over-shipment": problem_example(
                        409,
                        "over-shipment",
                        "More than ordered would ship",
                        f"product {ex.PRODUCT_ID}: 3 would ship, 1 of 3 ordered remain",
                        product_id=ex.PRODUCT_ID,
                        remaining=1,
                    )
                },
            },
        ),
    },
)
def create_shipment(
    order_id: str,
    body: Annotated[ShipmentCreate, Body(openapi_examples=_SHIPMENT_EXAMPLES)],
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Admins. ``lines`` omitted ships every unit not yet in a shipment; 409 when the order
    is not confirmed or a line would ship more than ordered. ``Idempotency-Key`` as for
    ``POST /orders``."""
    request = keyed_request(
        idempotency_key,
        viewer.user_id,
        f"/orders/{order_id}/shipments",
        body.model_dump(mode="json"),
        settings.idempotency_key_ttl_hours,
    )
    command = NewShipment(
        lines=(
            None
            if body.lines is None
            else [ShipmentLineRequest(line.product_id, line.quantity) for line in body.lines]
        ),
        carrier=body.carrier,
        service=body.service,
        tracking_number=body.tracking_number,
        tracking_url=body.tracking_url,
        buy_label=body.buy_label,
    )
    return answer_of(
        shipping.create_shipment_idempotently(
            session,
            viewer,
            order_id,
            command,
            request,
            lambda shipment: _render_created(session, shipment),
        )
    )


@orders_router.get(
    "/{order_id}/shipments",
    response_model=ListPage[ShipmentOut],
    summary="An order's shipments",
    description="The order's shipments, oldest first, with their lines and tracking history."
    + _OWNER_OR_ADMIN,
    responses={
        **json_answer(200, "A page of shipments", shipments=ex.page(ex.SHIPMENT)),
        **problem_responses(401, 404, examples=_NO_ORDER),
    },
)
def list_shipments(
    order_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    offset: Offset = 0,
) -> ListPage[ShipmentOut]:
    page = shipping.list_shipments(session, order_id, viewer, limit, offset)
    return ListPage(
        items=[ShipmentOut.of(s) for s in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get(
    "/{shipment_id}",
    response_model=ShipmentOut,
    summary="Get a shipment",
    description="One shipment: its status, carrier, tracking number, lines and tracking "
    "history (every update received, oldest first)." + _OWNER_OR_ADMIN,
    responses={
        **json_answer(200, "The shipment", shipment=ex.SHIPMENT),
        **problem_responses(401, 404, examples=_NO_SHIPMENT),
    },
)
def get_shipment(shipment_id: str, viewer: ViewerDep, session: SessionDep) -> ShipmentOut:
    return ShipmentOut.of(shipping.get_shipment(session, shipment_id, viewer))


@router.post(
    "/{shipment_id}/events",
    status_code=status.HTTP_201_CREATED,
    response_model=ShipmentOut,
    summary="Record a tracking update (admin)",
    description=(
        "A tracking update pushed by a warehouse or an ERP. It moves the shipment only if "
        "dated after the latest update that did; an older one is kept in the history and "
        "moves nothing. The same status at the same time again is 200 and changes nothing. "
        "The order follows: `shipped` once every unit is under way, `delivered` once every "
        "unit arrived."
    ),
    responses={
        **json_answer(201, "The update recorded; the shipment as it is now", moved=ex.SHIPMENT),
        **json_answer(
            200, "The same update was recorded before: nothing changed", same=ex.SHIPMENT
        ),
        **problem_responses(*BODY_PROBLEMS, 401, 403, 404, examples={**_NO_SHIPMENT, **_ADMINS}),
    },
)
def add_tracking_event(
    shipment_id: str,
    body: Annotated[
        TrackingEventIn,
        Body(
            openapi_examples={"in-transit": {"summary": "At the hub", "value": ex.TRACKING_EVENT}}
        ),
    ],
    viewer: ViewerDep,
    session: SessionDep,
) -> JSONResponse:
    """Admins: a tracking update pushed by a warehouse or an ERP. 201 when recorded (it
    moves the shipment only if dated after the latest update that did); 200 when the same
    status at the same time was recorded before."""
    update = TrackingUpdate(body.status, body.occurred_at, body.location, body.description)
    shipment, recorded = shipping.track_update_as_admin(session, shipment_id, update, viewer)
    session.flush()
    session.refresh(shipment)
    return JSONResponse(
        ShipmentOut.of(shipment).model_dump(mode="json"),
        status.HTTP_201_CREATED if recorded else status.HTTP_200_OK,
    )


@router.post(
    "/{shipment_id}/cancel",
    response_model=ShipmentOut,
    summary="Cancel a shipment (admin)",
    description=(
        "Only while `pending` or `label_created`: its units may ship again and a bought "
        "label is voided. Once under way it is 409 (return it instead). Cancelling it again "
        "is 200."
    ),
    responses={
        **json_answer(
            200, "The shipment, cancelled", cancelled={**ex.NEW_SHIPMENT, "status": "cancelled"}
        ),
        **problem_responses(
            401,
            403,
            404,
            409,
            examples={
                **_NO_SHIPMENT,
                **_ADMINS,
                409: {
                    "under-way": problem_example(
                        409,
                        "transition-not-allowed",
                        "Transition not allowed",
                        "a shipment that is in_transit can no longer be cancelled; return it "
                        "instead",
                    )
                },
            },
        ),
    },
)
def cancel_shipment(shipment_id: str, viewer: ViewerDep, session: SessionDep) -> ShipmentOut:
    """Admins; only before ``in_transit``. Its lines may ship again; a bought label is
    voided."""
    return ShipmentOut.of(shipping.cancel_shipment(session, shipment_id, viewer))


@router.get(
    "/{shipment_id}/label",
    response_class=Response,
    summary="Download a shipment's label",
    description="The label PDF the local shipping provider made, once bought (404 until "
    "then; Shippo's labels are at the shipment's `label_url`)." + _OWNER_OR_ADMIN,
    responses={
        200: {
            "description": "The label PDF",
            "content": {
                "application/pdf": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": "%PDF-1.4 …",
                }
            },
        },
        **problem_responses(401, 404, examples=_NO_SHIPMENT),
    },
)
def shipment_label(shipment_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    """The label PDF the local provider made (404 until bought; Shippo's labels are at the
    shipment's ``label_url``)."""
    shipment = shipping.get_shipment(session, shipment_id, viewer)
    label = ShipmentRepository(session).label_of(shipment.id)
    if label is None or label.pdf is None:
        raise NotFound(f"shipment {shipment_id} has no label here")
    return Response(
        label.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{shipment.id}-label.pdf"'},
    )
