"""The sweeper: finds orders whose next step has not happened for a while and schedules it
again. This is what makes a flushed or restarted broker harmless: the database says what
is left to do, the broker is only how it gets there.

Each query reads at most ``SWEEP_BATCH`` ids (about 40 bytes each), so a sweep holds well
under a megabyte whatever the backlog; what is left is found by the next sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, update
from sqlalchemy.orm import Session

from orderflow.fulfilment.invoicing import INVOICED_STATUSES
from orderflow.fulfilment.notifications import EMAIL_STATUSES
from orderflow.fulfilment.steps import EmailKind, Step, schedule
from orderflow.models import EmailRecord, Invoice, Order, Payment, StockReservation
from orderflow.orders.state import OrderStatus

SWEEP_BATCH = 500
DEFAULT_STALL_SECONDS = 30.0

_PENDING = OrderStatus.PENDING.value


@dataclass(frozen=True)
class Redrive:
    step: Step
    order_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def redrive_stalled(session: Session, stalled_for: float = DEFAULT_STALL_SECONDS) -> list[Redrive]:
    """Schedule the next step of every stalled order (through the outbox); return them."""
    work = find_stalled_work(session, stalled_for)
    for item in work:
        schedule(session, item.step, item.order_id, **item.kwargs)
    # Touching the orders makes the next sweeps wait a whole stall period before scheduling
    # them again, so a broker or worker outage does not pile up duplicate messages.
    session.execute(
        update(Order)
        .where(Order.id.in_({item.order_id for item in work}))
        .values(updated_at=func.now())
    )
    return work


def find_stalled_work(session: Session, stalled_for: float) -> list[Redrive]:
    cutoff = datetime.now(UTC) - timedelta(seconds=stalled_for)
    stale = Order.updated_at < cutoff
    work = [
        *_ids(session, Step.RESERVE_STOCK, _pending_unreserved(), stale),
        *_ids(session, Step.CHARGE_PAYMENT, _pending_reserved_unpaid(), stale),
        *_ids(session, Step.CHARGE_PAYMENT, _ended_with_charge_in_flight(), stale),
        *_ids(session, Step.GENERATE_INVOICE, _uninvoiced(), stale),
        *_ids(session, Step.REFUND_PAYMENT, _unrefunded(), stale),
    ]
    for kind, statuses in EMAIL_STATUSES.items():
        owed = and_(Order.status.in_(statuses), _email_unsent(kind))
        if kind is EmailKind.CONFIRMATION:
            owed = and_(owed, exists().where(Invoice.order_id == Order.id))
        work += _ids(session, Step.SEND_EMAIL, owed, stale, kind=kind.value)
    return work


def _ids(
    session: Session,
    step: Step,
    condition: ColumnElement[bool],
    stale: ColumnElement[bool] | None,
    **kwargs: Any,
) -> list[Redrive]:
    query = select(Order.id).where(condition)
    if stale is not None:
        query = query.where(stale)
    ids = session.scalars(query.order_by(Order.updated_at).limit(SWEEP_BATCH))
    return [Redrive(step, order_id, dict(kwargs)) for order_id in ids]


def _charge(*statuses: str) -> ColumnElement[bool]:
    return exists().where(
        Payment.order_id == Order.id, Payment.kind == "charge", Payment.status.in_(statuses)
    )


def _pending_unreserved() -> ColumnElement[bool]:
    return and_(
        Order.status == _PENDING,
        Order.failure_reason.is_(None),
        ~exists().where(StockReservation.order_id == Order.id),
    )


def _pending_reserved_unpaid() -> ColumnElement[bool]:
    """Pending, stock held, and the charge not final nor parked for an operator. Includes
    orders waiting on a customer action: the charge step asks the provider how they stand,
    which heals a payment that succeeded while its webhook was lost."""
    return and_(
        Order.status == _PENDING,
        Order.failure_reason.is_(None),
        exists().where(StockReservation.order_id == Order.id),
        ~_charge("succeeded", "declined", "unavailable"),
    )


def _ended_with_charge_in_flight() -> ColumnElement[bool]:
    """Cancelled or failed while a charge was under way: it may have captured money."""
    return and_(
        Order.status.in_((OrderStatus.CANCELLED.value, OrderStatus.FAILED.value)),
        _charge("processing", "requires_action"),
    )


def _uninvoiced() -> ColumnElement[bool]:
    return and_(Order.status.in_(INVOICED_STATUSES), ~exists().where(Invoice.order_id == Order.id))


def _unrefunded() -> ColumnElement[bool]:
    refunded = exists().where(
        Payment.order_id == Order.id, Payment.kind == "refund", Payment.status == "succeeded"
    )
    return and_(
        Order.status.in_((OrderStatus.CANCELLED.value, OrderStatus.FAILED.value)),
        _charge("succeeded"),
        ~refunded,
    )


def _email_unsent(kind: EmailKind) -> ColumnElement[bool]:
    """No e-mail of ``kind`` was sent: none claimed, or a claim that never finished."""
    return ~exists().where(
        EmailRecord.order_id == Order.id,
        EmailRecord.kind == kind.value,
        EmailRecord.status == "sent",
    )
