"""Shipment use cases of the API: create (with ``Idempotency-Key``), read, record a tracking
update, cancel. Each locks the order first (then the shipment), changes the shipment
(``packing``) and settles the order (``moves.settle_order``), in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from orderflow import idempotency
from orderflow.errors import Forbidden, NotFound, Unprocessable
from orderflow.fulfilment.moves import cancel_shipment_row, settle_order
from orderflow.fulfilment.packing import NewShipment, apply_update, new_shipment
from orderflow.models import Shipment
from orderflow.orders.repository import OrderRepository
from orderflow.orders.service import Viewer, get_order
from orderflow.orders.state import ActorRole
from orderflow.pagination import Page
from orderflow.shipments.repository import ShipmentRepository, TrackingUpdate
from orderflow.shipments.state import TRACKING, check_cancel
from orderflow.statuses import ShipmentStatus
from orderflow.steps import Step, schedule

#: A tracking update dated further ahead than this is refused: it would hold the shipment
#: still until that date (updates dated before the latest never move it).
MAX_CLOCK_SKEW = timedelta(hours=24)


def create_shipment_idempotently(
    session: Session,
    viewer: Viewer,
    order_id: str,
    command: NewShipment,
    request: idempotency.IdempotentRequest | None,
    render: Callable[[Shipment], idempotency.StoredResponse],
) -> idempotency.Answer:
    """Create the shipment, or replay the answer given to the same ``Idempotency-Key``
    (``idempotency.once``, as for orders)."""
    _admin_only(viewer)
    return idempotency.once(
        session, request, lambda: render(create_shipment(session, viewer, order_id, command))
    )


def create_shipment(
    session: Session, viewer: Viewer, order_id: str, command: NewShipment
) -> Shipment:
    _admin_only(viewer)
    get_order(session, order_id, viewer)
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    shipment = new_shipment(orders, order, command, viewer.user_id)
    if command.buy_label:
        schedule(session, Step.BUY_LABEL, order.id, shipment_id=shipment.id)
    settle_order(orders, order, role=viewer.role, actor=viewer.user_id)
    return shipment


def get_shipment(session: Session, shipment_id: str, viewer: Viewer) -> Shipment:
    """The shipment if the viewer may see its order; anyone else is told it does not exist."""
    shipment = ShipmentRepository(session).get(shipment_id)
    order = None if shipment is None else OrderRepository(session).get(shipment.order_id)
    if shipment is None or not viewer.may_see(order):
        raise NotFound(f"shipment {shipment_id} does not exist", shipment_id=shipment_id)
    return shipment


def list_shipments(
    session: Session, order_id: str, viewer: Viewer, limit: int, offset: int
) -> Page[Shipment]:
    get_order(session, order_id, viewer)
    return ShipmentRepository(session).page(order_id, limit, offset)


def record_tracking(
    session: Session,
    shipment_id: str,
    update: TrackingUpdate,
    *,
    role: ActorRole,
    actor: str,
    source: str,
) -> tuple[Shipment, bool]:
    """A tracking update for the shipment: recorded once (same status and time: nothing
    happens), moving the shipment only if dated after the latest update that moved it, and
    the order with it. Returns the shipment and whether the update was new."""
    if update.status not in TRACKING:
        raise Unprocessable(
            f"a tracking update cannot say {update.status.value}",
            errors=[{"field": "status", "message": "not a tracking status"}],
        )
    if update.occurred_at > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise Unprocessable(
            "occurred_at is more than a day ahead",
            errors=[{"field": "occurred_at", "message": "in the future"}],
        )
    shipments = ShipmentRepository(session)
    order_id = shipments.require(shipment_id).order_id
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    shipment = shipments.lock(shipment_id)
    outcome = apply_update(orders, shipment, update, source=source, actor=actor)
    if outcome:
        settle_order(orders, order, role=role, actor=actor)
    return shipment, outcome is not None


def track_update_as_admin(
    session: Session, shipment_id: str, update: TrackingUpdate, viewer: Viewer
) -> tuple[Shipment, bool]:
    _admin_only(viewer)
    return record_tracking(
        session, shipment_id, update, role=viewer.role, actor=viewer.user_id, source="admin"
    )


def cancel_shipment(session: Session, shipment_id: str, viewer: Viewer) -> Shipment:
    """Cancel a shipment before it is under way; cancelling it again changes nothing."""
    _admin_only(viewer)
    shipments = ShipmentRepository(session)
    order_id = shipments.require(shipment_id).order_id
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    shipment = shipments.lock(shipment_id)
    if shipment.status is ShipmentStatus.CANCELLED:
        return shipment
    check_cancel(shipment.status)
    cancel_shipment_row(orders, shipment, viewer.user_id)
    settle_order(orders, order, role=viewer.role, actor=viewer.user_id)
    return shipment


def _admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("only admins may change shipments")
