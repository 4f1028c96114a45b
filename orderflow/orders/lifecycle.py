"""Moving an order between statuses: compare-and-set on the row, an event for every move, and
the customer's e-mail for the new status scheduled in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from orderflow.errors import NotFound, TransitionNotAllowed
from orderflow.fulfilment.steps import EmailKind, Step, schedule
from orderflow.models import Order, table_of
from orderflow.orders.events import record_event
from orderflow.orders.state import ActorRole, OrderStatus, check_transition

#: The e-mail each status sends; ``confirmed`` sends its own once the invoice exists.
STATUS_EMAILS = {
    OrderStatus.SHIPPED: EmailKind.SHIPPED,
    OrderStatus.DELIVERED: EmailKind.DELIVERED,
    OrderStatus.CANCELLED: EmailKind.CANCELLED,
    OrderStatus.FAILED: EmailKind.FAILED,
}


def lock_order(session: Session, order_id: str) -> Order:
    """The order row, locked and freshly read; its lines load only if the caller reads them
    (most steps never do)."""
    order = session.scalar(_LOCK_ORDER, {"order_id": order_id})
    if order is None:
        raise NotFound(f"order {order_id} does not exist", order_id=order_id)
    return order


_orders = table_of(Order)
# Built once (compiled and cache-keyed once): every step locks the order, most move it.
_LOCK_ORDER = (
    select(Order)
    .where(Order.id == bindparam("order_id"))
    .with_for_update()
    .options(lazyload(Order.lines))
    .execution_options(populate_existing=True)
)
#: Compare-and-set on the status; the columns to set are the parameters' other keys.
_MOVE_ORDER = (
    update(_orders)
    .where(_orders.c.id == bindparam("moving_id"), _orders.c.status == bindparam("moving_from"))
    .values(updated_at=func.now())
    .returning(_orders.c.updated_at)
)


def transition(
    session: Session,
    order: Order,
    target: OrderStatus,
    *,
    role: ActorRole,
    actor: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Move ``order`` to ``target`` if the state machine allows it and nobody moved it first."""
    current = OrderStatus(order.status)
    check_transition(current, target, role)
    moved = session.execute(
        _MOVE_ORDER,
        {"moving_id": order.id, "moving_from": current.value, "status": target.value, **changes},
    ).first()
    if moved is None:
        raise TransitionNotAllowed(f"order {order.id} changed status concurrently; retry")
    # The row now holds exactly these values: put them on the object as loaded, without the
    # SELECTs of a refresh (and without marking it dirty).
    for name, value in {"status": target.value, "updated_at": moved.updated_at, **changes}.items():
        set_committed_value(order, name, value)
    record_event(
        session,
        order.id,
        "status_changed",
        actor,
        {"from": current.value, "to": target.value, "reason": reason, **(details or {})},
    )
    if target in STATUS_EMAILS:
        schedule(session, Step.SEND_EMAIL, order.id, kind=STATUS_EMAILS[target].value)
