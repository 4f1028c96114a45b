"""Giving money back: the refund step and what the provider says of refunds.

A refund is asked for in ``refund_requests`` (under the order's row lock, within what is
left of the capture, written ``pending`` with an outbox message). The refund step asks the provider
with the idempotency key ``orderflow:<order>:refund:<refund id>``, so a retried step never
refunds twice, and records the answer; the provider's webhooks reconcile what it decides
later (a refund that succeeded and is then reported failed makes its money refundable
again). A database CHECK keeps pending + refunded within the capture whatever the code does.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.event_types import OrderEventType
from orderflow.fulfilment import returning
from orderflow.fulfilment.charging import Anomaly, Reporter, ReportOutcome, record_payment_anomaly
from orderflow.fulfilment.crediting import after_refund_succeeded
from orderflow.idempotency import refund_idempotency_key
from orderflow.money import Money
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.payments import PaymentProvider, PaymentRejected, RefundResult
from orderflow.statuses import PaymentRecordStatus, PaymentStatus, RefundStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RefundCall:
    order_id: str
    refund_id: str
    payment_intent_id: str
    amount: Money


def refund_payment(
    database: Database, provider: PaymentProvider, order_id: str, refund_id: str | None = None
) -> None:
    """The refund step: ask the provider for one pending refund (or, for a message written
    before refunds had ids, for each pending refund of the order) and record its answer."""
    with database.unit_of_work() as session:
        calls = begin_refunds(session, order_id, refund_id)
    for call in calls:
        try:
            result = provider.refund(
                order_id=order_id,
                payment_intent_id=call.payment_intent_id,
                amount=call.amount,
                idempotency_key=refund_idempotency_key(order_id, call.refund_id),
                refund_id=call.refund_id,
            )
        except PaymentRejected as error:
            log.warning("refund refused by the provider", order_id=order_id, code=error.code)
            with database.unit_of_work() as session:
                record_refund_outcome(
                    session, call.refund_id, RefundStatus.FAILED, None, error.code
                )
                session.commit()
            continue
        with database.unit_of_work() as session:
            record_provider_refund(session, call.refund_id, result)
            session.commit()


def begin_refunds(session: Session, order_id: str, refund_id: str | None) -> list[RefundCall]:
    orders = OrderRepository(session)
    orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id)
    if charge is None or charge.status != PaymentRecordStatus.SUCCEEDED or not charge.provider_id:
        return []
    refunds = orders.refunds_of(order_id)
    return [
        RefundCall(order_id, refund.id, charge.provider_id, refund.money)
        for refund in refunds
        if refund.status == RefundStatus.PENDING and refund_id in (None, refund.id)
    ]


def record_provider_refund(session: Session, refund_id: str, result: RefundResult) -> None:
    """What the provider answered to our refund call (Stripe's refund statuses)."""
    status = _STATUS_OF.get(result.status)
    record_refund_outcome(session, refund_id, status, result.refund_id, None)


def record_refund_outcome(
    session: Session,
    refund_id: str,
    status: RefundStatus | None,
    provider_id: str | None,
    failure_code: str | None,
) -> None:
    """Move a refund to ``status`` (None: still pending at the provider) and keep the
    order's counters and payment status with it. Safe to repeat; a failure reported after
    a success gives the money back to what is refundable."""
    orders = OrderRepository(session)
    refund = orders.refund(refund_id)
    if refund is None:
        return
    order = orders.lock_for_update(refund.order_id)
    refund = orders.refund(refund_id, lock=True)
    assert refund is not None
    if provider_id and refund.provider_id is None:
        orders.update_refund(refund, provider_id=provider_id)
    if status is None or status == refund.status or refund.status == RefundStatus.FAILED:
        return  # nothing new; a failed refund stays failed (ask for a new one)
    pending, refunded = order.refund_pending_amount, order.refunded_amount
    order_refunded_before = refunded
    if refund.status == RefundStatus.PENDING:
        pending -= refund.amount
    else:  # succeeded, now reported failed
        refunded -= refund.amount
    if status == RefundStatus.SUCCEEDED:
        refunded += refund.amount
    orders.update_refund(refund, status=status, failure_code=failure_code)
    orders.update(
        order,
        refund_pending_amount=pending,
        refunded_amount=refunded,
        payment_status=_payment_status(order.captured_amount, refunded),
    )
    if status == RefundStatus.SUCCEEDED:
        after_refund_succeeded(orders, order, refund)
    event = (
        OrderEventType.PAYMENT_REFUNDED
        if status == RefundStatus.SUCCEEDED
        else OrderEventType.REFUND_FAILED
    )
    orders.record_event(
        order.id,
        event,
        SYSTEM_ACTOR,
        {"refund_id": refund.id, "provider_refund_id": refund.provider_id,
         "amount": refund.amount, "currency": refund.currency, "failure_code": failure_code},
    )  # fmt: skip
    returning.refund_settled(orders, refund, status)
    changed = ["refundable_amount"]
    if refunded != order_refunded_before:
        changed += ["refunded_amount", "payment_status"]
    orders.record_update(order.id, SYSTEM_ACTOR, changed)


def _payment_status(captured: int, refunded: int) -> PaymentStatus:
    if refunded <= 0:
        return PaymentStatus.PAID
    return PaymentStatus.REFUNDED if refunded >= captured else PaymentStatus.PARTIALLY_REFUNDED


#: Stripe's refund statuses; ``pending`` and ``requires_action`` are still under way.
_STATUS_OF: dict[str, RefundStatus] = {
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}


@dataclass(frozen=True)
class ReportedRefund:
    """A refund as a provider event shows it."""

    provider_id: str
    amount: Money
    status: str
    refund_id: str | None = None  # ours, from the refund's metadata
    failure_code: str | None = None


def reconcile_refund(
    session: Session, order_id: str, intent_id: str, report: ReportedRefund
) -> ReportOutcome:
    """A refund the provider announced: applied only to one of the order's own refunds, of
    the order's own captured intent, for its amount and currency; anything else is a payment
    anomaly and changes nothing."""
    orders = OrderRepository(session)
    orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id)
    refund = orders.refund_by_provider_id(report.provider_id)
    if refund is None and report.refund_id:
        refund = orders.refund(report.refund_id)
    reason = None
    if charge is None or charge.status != PaymentRecordStatus.SUCCEEDED:
        reason = Anomaly.NO_CHARGE
    elif charge.provider_id != intent_id or refund is None or refund.order_id != order_id:
        reason = Anomaly.FOREIGN_INTENT
    elif report.amount != refund.money:
        reason = Anomaly.AMOUNT_MISMATCH
    if reason is not None or refund is None:
        details = {"payment_intent_id": intent_id, "provider_refund_id": report.provider_id,
                   "amount": report.amount.amount, "currency": report.amount.currency}  # fmt: skip
        record_payment_anomaly(
            orders, order_id, reason or Anomaly.FOREIGN_INTENT, Reporter.WEBHOOK, details
        )
        return ReportOutcome.ANOMALY
    status = _STATUS_OF.get(report.status)
    record_refund_outcome(session, refund.id, status, report.provider_id, report.failure_code)
    return ReportOutcome.APPLIED
