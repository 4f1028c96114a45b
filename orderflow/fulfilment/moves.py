"""How an order moves, with what follows each move: confirmed once paid (then invoiced),
failed with its stock given back, cancelled (stock back, refund if paid), shipped and
delivered by an admin; every move but ``confirmed`` sends its e-mail (``confirmed`` sends its
own once the invoice exists). The state machine and the row are ``orders``'; what a move
causes is decided here."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orderflow.errors import Forbidden, TransitionNotAllowed
from orderflow.fulfilment.refund_requests import refund_in_full
from orderflow.fulfilment.reservations import release_stock
from orderflow.models import Order
from orderflow.orders.lifecycle import transition
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.orders.service import Viewer, get_order
from orderflow.orders.state import ActorRole
from orderflow.statuses import OrderStatus
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
        **changes,
    )


def change_status(session: Session, order_id: str, target: OrderStatus, viewer: Viewer) -> Order:
    """An admin moves an order (ship, deliver, cancel) through the state machine."""
    if not viewer.is_admin:
        raise Forbidden("only admins may change an order's status")
    if target is OrderStatus.CANCELLED:
        return cancel_order(session, order_id, viewer)
    get_order(session, order_id, viewer)
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    move(orders, order, target, role=viewer.role, actor=viewer.user_id)
    return order


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
    release_stock(orders.session, order.id)
    move(
        orders,
        order,
        OrderStatus.CANCELLED,
        role=viewer.role,
        actor=viewer.user_id,
        reason="cancelled_by_admin" if viewer.is_admin else "cancelled_by_customer",
    )
    refund_in_full(orders, order)
    return order
