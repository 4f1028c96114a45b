"""Re-driving by an operator (``orderflow redrive``): orders whose next step has not happened
for a while, and orders parked on a provider failure once its cause is fixed.

Re-driving only schedules the step again through the outbox; the steps are idempotent, so a
re-drive of an order that was about to move anyway is harmless."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from orderflow.event_types import OrderEventType
from orderflow.fulfilment.charging import PROVIDER_MISCONFIGURED, PROVIDER_UNAVAILABLE
from orderflow.fulfilment.sweeper import find_stalled_work
from orderflow.orders.repository import OrderRepository
from orderflow.statuses import OrderStatus
from orderflow.steps import Step, schedule

#: Parking reasons an operator may re-drive once the provider (or its key) is back.
PARKED_REASONS = (PROVIDER_UNAVAILABLE, PROVIDER_MISCONFIGURED)
STALLED = "stalled"
AWAITING_CUSTOMER = "awaiting_customer_action"
OPERATOR_ACTOR = "operator"


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
    parked = OrderRepository(session).parked(PARKED_REASONS)
    items = [RedriveItem(order_id, Step.CHARGE_PAYMENT, reason) for order_id, reason in parked]
    for work in find_stalled_work(session, older_than):
        items.append(RedriveItem(work.order_id, work.step, STALLED, dict(work.kwargs)))
    return items


def redrive(session: Session, item: RedriveItem) -> bool:
    """Schedule the item's step again; unpark a parked order first. False when the order
    moved on since it was found (nothing is done then)."""
    if item.reason != STALLED and not _unpark(session, item):
        return False
    schedule(session, item.step, item.order_id, **item.kwargs)
    OrderRepository(session).touch_all([item.order_id])
    return True


def _unpark(session: Session, item: RedriveItem) -> bool:
    orders = OrderRepository(session)
    order = orders.lock_for_update(item.order_id)
    if order.status != OrderStatus.PENDING or order.failure_reason != item.reason:
        return False
    orders.update(order, failure_reason=None)
    # The charge may be asked for again (same attempt, same idempotency key), and the
    # sweeper may re-drive it again if this message is lost too.
    orders.unpark_charge(item.order_id)
    orders.record_event(
        item.order_id, OrderEventType.PAYMENT_REDRIVEN, OPERATOR_ACTOR, {"reason": item.reason}
    )
    return True


#: Every reason ``stuck_orders`` reports, so a metric can show each one even at zero.
STUCK_REASONS = (STALLED, AWAITING_CUSTOMER, *PARKED_REASONS)


def stuck_orders(session: Session, older_than: float) -> dict[str, int]:
    """Pending orders that have not moved for longer than ``older_than`` seconds, by reason:
    parked on a failure, waiting for the customer to authenticate a payment, or simply
    stalled. Every reason of ``STUCK_REASONS`` is in the answer, at zero when none is stuck.

    "Not moved" is measured from the order's last event, not its ``updated_at``: the
    sweeper touches ``updated_at`` whenever it re-drives an order (and asks the provider
    about a payment waiting for the customer every stall period), so an order stuck for
    hours would otherwise drop out of the count for most of every period."""
    counts = dict.fromkeys(STUCK_REASONS, 0)
    counts.update(OrderRepository(session).stuck_counts(older_than, AWAITING_CUSTOMER, STALLED))
    return counts
