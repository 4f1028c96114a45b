"""Re-driving by an operator (``orderflow redrive``): orders whose next step has not happened
for a while, and orders parked on a provider failure once its cause is fixed.

Re-driving only schedules the step again through the outbox; the steps are idempotent, so a
re-drive of an order that was about to move anyway is harmless."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, exists, func, literal, select, update
from sqlalchemy.orm import Session

from orderflow.fulfilment.charging import PROVIDER_MISCONFIGURED, PROVIDER_UNAVAILABLE
from orderflow.fulfilment.steps import Step, schedule
from orderflow.fulfilment.sweeper import SWEEP_BATCH, find_stalled_work
from orderflow.models import Order, Payment
from orderflow.orders.events import record_event
from orderflow.orders.lifecycle import lock_order
from orderflow.orders.state import OrderStatus

#: Parking reasons an operator may re-drive once the provider (or its key) is back.
PARKED_REASONS = (PROVIDER_UNAVAILABLE, PROVIDER_MISCONFIGURED)
STALLED = "stalled"
AWAITING_CUSTOMER = "awaiting_customer_action"
OPERATOR_ACTOR = "operator"

_PENDING = OrderStatus.PENDING.value


@dataclass(frozen=True)
class RedriveItem:
    order_id: str
    step: Step
    #: ``stalled``, or the failure reason the order is parked on.
    reason: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = "".join(f" {key}={value}" for key, value in sorted(self.kwargs.items()))
        return f"{self.order_id}: {self.step.value}{extra} ({self.reason})"


def find_redrivable(session: Session, older_than: float) -> list[RedriveItem]:
    """Orders parked on a provider failure (whatever their age), then every step owed for
    longer than ``older_than`` seconds. At most one sweep batch of each kind."""
    parked = session.execute(
        select(Order.id, Order.failure_reason)
        .where(Order.status == _PENDING, Order.failure_reason.in_(PARKED_REASONS))
        .order_by(Order.updated_at)
        .limit(SWEEP_BATCH)
    ).all()
    items = [RedriveItem(order_id, Step.CHARGE_PAYMENT, str(reason)) for order_id, reason in parked]
    for work in find_stalled_work(session, older_than):
        items.append(RedriveItem(work.order_id, work.step, STALLED, dict(work.kwargs)))
    return items


def redrive(session: Session, item: RedriveItem) -> bool:
    """Schedule the item's step again; unpark a parked order first. False when the order
    moved on since it was found (nothing is done then)."""
    if item.reason != STALLED and not _unpark(session, item):
        return False
    schedule(session, item.step, item.order_id, **item.kwargs)
    session.execute(update(Order).where(Order.id == item.order_id).values(updated_at=func.now()))
    return True


def _unpark(session: Session, item: RedriveItem) -> bool:
    order = lock_order(session, item.order_id)
    if order.status != _PENDING or order.failure_reason != item.reason:
        return False
    order.failure_reason = None
    # The charge may be asked for again (same attempt, same idempotency key), and the
    # sweeper may re-drive it again if this message is lost too.
    session.execute(
        update(Payment)
        .where(
            Payment.order_id == item.order_id,
            Payment.kind == "charge",
            Payment.status == "unavailable",
        )
        .values(status="processing", updated_at=func.now())
    )
    record_event(
        session, item.order_id, "payment_redriven", OPERATOR_ACTOR, {"reason": item.reason}
    )
    return True


def stuck_orders(session: Session, older_than: float) -> dict[str, int]:
    """Pending orders untouched for longer than ``older_than`` seconds, by reason: parked on
    a failure, waiting for the customer to authenticate a payment, or simply stalled."""
    awaiting = exists().where(
        Payment.order_id == Order.id,
        Payment.kind == "charge",
        Payment.status == "requires_action",
    )
    reason = func.coalesce(
        Order.failure_reason,
        case((awaiting, literal(AWAITING_CUSTOMER)), else_=literal(STALLED)),
    )
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than)
    rows = session.execute(
        select(reason, func.count())
        .where(Order.status == _PENDING, Order.updated_at < cutoff)
        .group_by(reason)
    ).all()
    return {str(name): int(count) for name, count in rows}
