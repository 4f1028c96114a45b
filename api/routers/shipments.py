"""Shipments of an order, their tracking updates and cancellation (DESIGN.md, "Shipments and
shipping status"). Thin: parse, call one service of ``fulfilment.shipping``, serialise."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.deps import DEFAULT_PAGE_LIMIT, Limit, Offset, SessionDep, SettingsDep, ViewerDep
from api.routers.orders import IdempotencyKeyHeader
from api.schemas.common import BODY_PROBLEMS, ListPage, problem_responses
from api.schemas.shipments import ShipmentCreate, ShipmentOut, TrackingEventIn
from orderflow import idempotency
from orderflow.errors import NotFound
from orderflow.fulfilment import shipping
from orderflow.fulfilment.packing import NewShipment, ShipmentLineRequest
from orderflow.models import Shipment
from orderflow.orders.service import IdempotentRequest
from orderflow.shipments.repository import ShipmentRepository, TrackingUpdate

orders_router = APIRouter(prefix="/orders", tags=["shipments"])
router = APIRouter(prefix="/shipments", tags=["shipments"])


def _render_created(session: Session, shipment: Shipment) -> idempotency.StoredResponse:
    session.flush()
    session.refresh(shipment)
    return idempotency.StoredResponse(
        status=status.HTTP_201_CREATED,
        body=ShipmentOut.of(shipment).model_dump(mode="json"),
        location=f"/api/v1/shipments/{shipment.id}",
    )


@orders_router.post(
    "/{order_id}/shipments",
    status_code=status.HTTP_201_CREATED,
    response_model=ShipmentOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 404, 409),
)
def create_shipment(
    order_id: str,
    body: ShipmentCreate,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Admins. ``lines`` omitted ships every unit not yet in a shipment; 409 when the order
    is not confirmed or a line would ship more than ordered. ``Idempotency-Key`` as for
    ``POST /orders``."""
    request = None
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
        request = IdempotentRequest(
            caller_id=viewer.user_id,
            key=idempotency_key,
            fingerprint=idempotency.fingerprint(
                "POST", f"/orders/{order_id}/shipments", body.model_dump(mode="json")
            ),
            ttl_hours=settings.idempotency_key_ttl_hours,
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
    created = shipping.create_shipment_idempotently(
        session,
        viewer,
        order_id,
        command,
        request,
        lambda shipment: _render_created(session, shipment),
    )
    headers = {"Location": created.response.location or ""}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(created.response.body, created.response.status, headers=headers)


@orders_router.get(
    "/{order_id}/shipments",
    response_model=ListPage[ShipmentOut],
    responses=problem_responses(401, 404),
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


@router.get("/{shipment_id}", response_model=ShipmentOut, responses=problem_responses(401, 404))
def get_shipment(shipment_id: str, viewer: ViewerDep, session: SessionDep) -> ShipmentOut:
    return ShipmentOut.of(shipping.get_shipment(session, shipment_id, viewer))


@router.post(
    "/{shipment_id}/events",
    status_code=status.HTTP_201_CREATED,
    response_model=ShipmentOut,
    responses={
        200: {"description": "The same update was recorded before: nothing changed"},
        **problem_responses(*BODY_PROBLEMS, 401, 403, 404),
    },
)
def add_tracking_event(
    shipment_id: str, body: TrackingEventIn, viewer: ViewerDep, session: SessionDep
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
    responses=problem_responses(401, 403, 404, 409),
)
def cancel_shipment(shipment_id: str, viewer: ViewerDep, session: SessionDep) -> ShipmentOut:
    """Admins; only before ``in_transit``. Its lines may ship again; a bought label is
    voided."""
    return ShipmentOut.of(shipping.cancel_shipment(session, shipment_id, viewer))


@router.get(
    "/{shipment_id}/label",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The label PDF"},
        **problem_responses(401, 404),
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
