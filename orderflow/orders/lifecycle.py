"""Moving an order between statuses: the state machine's check, a compare-and-set on the row,
and the ``status_changed`` event, in the caller's transaction. What follows a move (its
e-mail, giving stock back, a refund) is decided by the pipeline side (``fulfilment.moves``)."""

from __future__ import annotations

from typing import Any

from orderflow.errors import TransitionNotAllowed
from orderflow.event_types import OrderEventType
from orderflow.models import Order
from orderflow.orders.repository import OrderRepository
from orderflow.orders.state import ActorRole, check_transition
from orderflow.statuses import OrderStatus


def transition(
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
    """Move ``order`` to ``target`` if the state machine allows it and nobody moved it first;
    ``changes`` are further columns written with the move."""
    current = order.status
    check_transition(current, target, role)
    if not orders.move_status(order, target, **changes):
        raise TransitionNotAllowed(f"order {order.id} changed status concurrently; retry")
    orders.record_event(
        order.id,
        OrderEventType.STATUS_CHANGED,
        actor,
        {"from": current.value, "to": target.value, "reason": reason, **(details or {})},
    )
