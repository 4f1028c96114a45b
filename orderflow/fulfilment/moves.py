"""How an order moves, with what follows each move: confirmed once paid (then invoiced),
failed with its stock given back, cancelled (stock back, refund if paid, its shipments not
yet under way cancelled), shipped and delivered when its shipments are (``settle_order``);
every move but ``confirmed`` sends its e-mail (``confirmed`` sends its own once the invoice
exists), shipped and delivered an SMS too to customers who opted in. The state machine and
the row are ``orders``'; what a move causes is decided here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from orderflow.errors import Forbidden, TransitionNotAllowed
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.packing import NewShipment, apply_update, new_shipment
from orderflow.fulfilment.refund_requests import refund_in_full
from orderflow.fulfilment.reservations import release_stock
from orderflow.fulfilment.sms_notices import owe_sms
from orderflow.models import Order, Shipment
from orderflow.orders.lifecycle import transition
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.orders.service import Viewer, get_order
from orderflow.orders.state import ActorRole
from orderflow.shipments.repository import ShipmentRepository, TrackingUpdate
from orderflow.shipments.state import CANCELLABLE, UNDER_WAY, derive_shipping_status
from orderflow.statuses import (
    LabelStatus,
    OrderStatus,
    ShipmentStatus,
    ShippingStatus,
)
from orderflow.steps import EmailKind, Step, schedule

#: The e-mail each status sends.
STATUS_EMAILS = {
    OrderStatus.SHIPPED: EmailKind.SHIPPED,
    OrderStatus.DELIVERED: EmailKind.DELIVERED,
    OrderStatus.CANCELLED: EmailKind.CANCELLED,
    OrderStatus.FAILED: EmailKind.FAILED,
}


def move(
    orders: OrderRepository,
    order: Order,
    target: OrderStatus,
    *,
    role: ActorRole,
    actor: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Move the order (see ``orders.lifecycle.transition``) and schedule what follows."""
    transition(
        orders, order, target, role=role, actor=actor, reason=reason, details=details, **changes
    )
    if target in STATUS_EMAILS:
        schedule(orders.session, Step.SEND_EMAIL, order.id, kind=STATUS_EMAILS[target].value)
        owe_sms(orders.session, order, target)  # shipped, delivered: by SMS too if opted in
    if target is OrderStatus.CONFIRMED:
        schedule(orders.session, Step.GENERATE_INVOICE, order.id)


def fail_order(
    orders: OrderRepository,
    order: Order,
    reason: str,
    data: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Fail a pending order: give its stock back, name the reason, tell the customer.
    ``changes`` are further columns of the order written with the move."""
    release_stock(orders.session, order.id)
    move(
        orders,
        order,
        OrderStatus.FAILED,
        role=ActorRole.SYSTEM,
        actor=SYSTEM_ACTOR,
        reason=reason,
        details=data,
        failure_reason=reason,
        **changes,
    )


def confirm_order(orders: OrderRepository, order: Order, **changes: Any) -> None:
    """Stock is reserved and the payment captured: confirm, then invoice."""
    move(
        orders,
        order,
        OrderStatus.CONFIRMED,
        role=ActorRole.SYSTEM,
        actor=SYSTEM_ACTOR,
        reason="stock_reserved_and_paid",
        shipping_status=ShippingStatus.PROCESSING,
        **changes,
    )


def settle_order(orders: OrderRepository, order: Order, *, role: ActorRole, actor: str) -> None:
    """After a change to the shipments of ``order`` (locked): write its ``shipping_status``
    derived from them, and move it to ``shipped`` once every unit is under way and to
    ``delivered`` once every unit arrived, each through the state machine with its event
    and e-mail (a move happens once: the order is past it afterwards)."""
    progress = ShipmentRepository(orders.session).progress(order.id)
    status = derive_shipping_status(order.status, progress)
    changed = status != order.shipping_status
    if changed:
        orders.update(order, shipping_status=status)
    before = order.status
    if order.status is OrderStatus.CONFIRMED and status in (
        ShippingStatus.SHIPPED,
        ShippingStatus.PARTIALLY_DELIVERED,
        ShippingStatus.DELIVERED,
    ):
        move(orders, order, OrderStatus.SHIPPED, role=role, actor=actor, reason="all_units_shipped")
    if order.status is OrderStatus.SHIPPED and status is ShippingStatus.DELIVERED:
        move(
            orders, order, OrderStatus.DELIVERED, role=role, actor=actor,
            reason="all_units_delivered",
        )  # fmt: skip
    if changed and order.status is before:
        orders.record_update(order.id, actor, ["shipping_status"])


def change_status(session: Session, order_id: str, target: OrderStatus, viewer: Viewer) -> Order:
    """An admin moves an order (ship, deliver, cancel) through the state machine. Shipping
    and delivering go through shipments, as the order's other moves to those statuses do:
    ``shipped`` ships whatever is not in a shipment yet in one manual shipment and sends every
    shipment not yet under way on its way (``in_transit``); ``delivered`` marks every shipment
    delivered."""
    if not viewer.is_admin:
        raise Forbidden("only admins may change an order's status")
    if target is OrderStatus.CANCELLED:
        return cancel_order(session, order_id, viewer)
    get_order(session, order_id, viewer)
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    if target is OrderStatus.SHIPPED and order.status is OrderStatus.CONFIRMED:
        _ship_everything(orders, order, viewer)
    elif target is OrderStatus.DELIVERED and order.status is OrderStatus.SHIPPED:
        _deliver_everything(orders, order, viewer)
    else:  # not a move shipments make: the state machine says whether and why not
        move(orders, order, target, role=viewer.role, actor=viewer.user_id)
    if order.status is not target:
        raise TransitionNotAllowed(f"order {order.id} could not become {target.value}")
    return order


#: Who reports the tracking updates the legacy status route makes.
MANUAL_SOURCE = "manual"


def _ship_everything(orders: OrderRepository, order: Order, viewer: Viewer) -> None:
    shipments = ShipmentRepository(orders.session)
    if any(left > 0 for left in _left_to_ship(shipments, order)):
        new_shipment(orders, order, NewShipment(), viewer.user_id)
    _report_all(orders, order, ShipmentStatus.IN_TRANSIT, CANCELLABLE, viewer)
    settle_order(orders, order, role=viewer.role, actor=viewer.user_id)


def _deliver_everything(orders: OrderRepository, order: Order, viewer: Viewer) -> None:
    shipments = ShipmentRepository(orders.session).of_order(order.id)
    stuck = [s.id for s in shipments if s.status is ShipmentStatus.RETURNED_TO_SENDER]
    if stuck:
        raise TransitionNotAllowed(
            f"shipments {', '.join(stuck)} went back to the sender: they cannot be delivered"
        )
    _report_all(orders, order, ShipmentStatus.DELIVERED, UNDER_WAY - {ShipmentStatus.DELIVERED},
                viewer)  # fmt: skip
    settle_order(orders, order, role=viewer.role, actor=viewer.user_id)


def _left_to_ship(shipments: ShipmentRepository, order: Order) -> list[int]:
    shipped = shipments.shipped_by_line(order.id)
    return [line.quantity - shipped.get(line.id, 0) for line in order.lines]


def _report_all(
    orders: OrderRepository,
    order: Order,
    status: ShipmentStatus,
    sources: frozenset[ShipmentStatus],
    viewer: Viewer,
) -> None:
    """A tracking update ``status`` now, from the admin, for every shipment in ``sources``."""
    shipments = ShipmentRepository(orders.session)
    now = datetime.now(UTC)
    for shipment in shipments.of_order(order.id):
        if shipment.status in sources:
            locked = shipments.lock(shipment.id)
            apply_update(
                orders,
                locked,
                TrackingUpdate(status, max(now, locked.status_at or now), None, "set by an admin"),
                source=MANUAL_SOURCE,
                actor=viewer.user_id,
            )


def cancel_order(session: Session, order_id: str, viewer: Viewer) -> Order:
    """Cancel a pending or confirmed order: its stock goes back now, a refund follows if it was
    paid. Cancelling a cancelled order changes nothing."""
    get_order(session, order_id, viewer)
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    if order.status == OrderStatus.CANCELLED:
        return order
    if order.status not in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
        raise TransitionNotAllowed(f"an order that is {order.status} can no longer be cancelled")
    _cancel_shipments(orders, order, viewer.user_id)
    release_stock(orders.session, order.id)
    move(
        orders,
        order,
        OrderStatus.CANCELLED,
        role=viewer.role,
        actor=viewer.user_id,
        reason="cancelled_by_admin" if viewer.is_admin else "cancelled_by_customer",
        shipping_status=ShippingStatus.NOT_SHIPPED,
    )
    refund_in_full(orders, order)
    return order


def _cancel_shipments(orders: OrderRepository, order: Order, actor: str) -> None:
    """Before the order (locked) is cancelled: 409 if any of its shipments is under way (its
    goods have left: return them instead); cancel those that are not."""
    shipments = ShipmentRepository(orders.session)
    found = shipments.of_order(order.id)
    under_way = [shipment.id for shipment in found if shipment.status in UNDER_WAY]
    if under_way:
        raise TransitionNotAllowed(
            f"order {order.id} has shipments under way ({', '.join(under_way)}): it can no "
            "longer be cancelled; return it instead",
            order_id=order.id,
        )
    for shipment in found:
        if shipment.status in CANCELLABLE:
            cancel_shipment_row(orders, shipments.lock(shipment.id), actor)


def cancel_shipment_row(orders: OrderRepository, shipment: Shipment, actor: str) -> None:
    """Cancel ``shipment`` (locked, not under way; its order locked): its lines may ship
    again, and a label bought for it is voided (a pipeline step)."""
    previous = shipment.status
    shipments = ShipmentRepository(orders.session)
    label_changes: dict[str, Any] = {}
    if shipment.label_status in (LabelStatus.PENDING, LabelStatus.PURCHASED):
        label_changes["label_status"] = LabelStatus.VOIDED
        schedule(orders.session, Step.VOID_LABEL, shipment.order_id, shipment_id=shipment.id)
    shipments.update(shipment, status=ShipmentStatus.CANCELLED, **label_changes)
    orders.record_event(
        shipment.order_id,
        OrderEventType.SHIPMENT_CANCELLED,
        actor,
        {"shipment_id": shipment.id, "from": previous.value},
    )
