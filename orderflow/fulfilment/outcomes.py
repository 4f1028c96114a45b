"""How an order ends up: confirmed once paid, failed with its stock given back."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orderflow.fulfilment.reservations import release_stock
from orderflow.fulfilment.steps import Step, schedule
from orderflow.models import Order
from orderflow.orders.events import SYSTEM_ACTOR
from orderflow.orders.lifecycle import transition
from orderflow.orders.state import ActorRole, OrderStatus


def fail_order(
    session: Session,
    order: Order,
    reason: str,
    data: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Fail a pending order: give its stock back, name the reason, tell the customer.
    ``changes`` are further columns of the order written with the move."""
    release_stock(session, order.id)
    transition(
        session,
        order,
        OrderStatus.FAILED,
        role=ActorRole.SYSTEM,
        actor=SYSTEM_ACTOR,
        reason=reason,
        details=data,
        failure_reason=reason,
        **changes,
    )


def confirm_order(session: Session, order: Order, **changes: Any) -> None:
    """Stock is reserved and the payment captured: confirm, then invoice. ``changes`` are
    further columns of the order written with the move."""
    transition(
        session, order, OrderStatus.CONFIRMED, role=ActorRole.SYSTEM, actor=SYSTEM_ACTOR, **changes
    )
    schedule(session, Step.GENERATE_INVOICE, order.id)
