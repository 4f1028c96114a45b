"""Refunding a cancelled (or failed) order that was paid: once, in full, never more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.fulfilment.charging import (
    Anomaly,
    Reporter,
    ReportOutcome,
    record_payment_anomaly,
)
from orderflow.idempotency import refund_idempotency_key
from orderflow.models import Payment
from orderflow.money import Money
from orderflow.orders.events import SYSTEM_ACTOR, record_event
from orderflow.orders.lifecycle import lock_order
from orderflow.orders.state import OrderStatus, PaymentStatus
from orderflow.payments import PaymentProvider, PaymentRejected

log = structlog.get_logger(__name__)

_REFUNDABLE_ORDERS = (OrderStatus.CANCELLED.value, OrderStatus.FAILED.value)


@dataclass(frozen=True)
class RefundRequest:
    order_id: str
    payment_intent_id: str
    amount: Money


def refund_payment(database: Database, provider: PaymentProvider, order_id: str) -> None:
    with database.unit_of_work() as session:
        request = begin_refund(session, order_id)
    if request is None:
        return
    try:
        result = provider.refund(
            order_id=order_id,
            payment_intent_id=request.payment_intent_id,
            amount=request.amount,
            idempotency_key=refund_idempotency_key(order_id),
        )
    except PaymentRejected as error:
        if error.code != "charge_already_refunded":
            raise
        log.info("provider says already refunded", order_id=order_id)
        refund_id, amount = None, request.amount
    else:
        refund_id, amount = result.refund_id, result.amount
    with database.unit_of_work() as session:
        record_refund(session, order_id, refund_id, amount)


def begin_refund(session: Session, order_id: str) -> RefundRequest | None:
    order = lock_order(session, order_id)
    charge = _payment(session, order_id, "charge")
    if order.status not in _REFUNDABLE_ORDERS or charge is None or charge.status != "succeeded":
        return None
    refund = _payment(session, order_id, "refund")
    if refund is None:
        refund = Payment(
            order_id=order_id,
            kind="refund",
            status="processing",
            amount=charge.amount,
            currency=charge.currency,
        )
        session.add(refund)
    elif refund.status == "succeeded":
        return None
    assert charge.provider_id is not None
    return RefundRequest(order_id, charge.provider_id, Money(refund.amount, refund.currency))


def record_refund_report(
    session: Session, order_id: str, intent_id: str, refund_id: str | None, amount: Money
) -> ReportOutcome:
    """A refund the provider announced (``charge.refunded``): recorded only when it is of
    the order's own captured intent, in its currency and within what was captured;
    anything else is a payment anomaly and changes nothing."""
    lock_order(session, order_id)
    charge = _payment(session, order_id, "charge")
    if charge is None or charge.status != "succeeded":
        reason = Anomaly.NO_CHARGE
    elif charge.provider_id != intent_id:
        reason = Anomaly.FOREIGN_INTENT
    elif amount.currency != charge.currency or amount.amount > charge.amount:
        reason = Anomaly.AMOUNT_MISMATCH
    else:
        record_refund(session, order_id, refund_id, amount)
        return ReportOutcome.APPLIED
    details: dict[str, Any] = {
        "payment_intent_id": intent_id,
        "refund_id": refund_id,
        "amount": amount.amount,
        "currency": amount.currency,
    }
    if charge is not None:
        details["captured"] = {"amount": charge.amount, "currency": charge.currency}
    record_payment_anomaly(session, order_id, reason, Reporter.WEBHOOK, details)
    return ReportOutcome.ANOMALY


def record_refund(session: Session, order_id: str, refund_id: str | None, amount: Money) -> None:
    """Record a refund the provider made; a second report of it changes nothing."""
    order = lock_order(session, order_id)
    charge = _payment(session, order_id, "charge")
    refund = _payment(session, order_id, "refund")
    if charge is None or charge.status != "succeeded" or (refund and refund.status == "succeeded"):
        return
    if amount.amount > charge.amount:
        raise ValueError(f"refund of {amount} exceeds the {charge.amount} captured")
    if refund is None:
        refund = Payment(order_id=order_id, kind="refund", currency=charge.currency, amount=0)
        session.add(refund)
    refund.status, refund.amount, refund.provider_id = "succeeded", amount.amount, refund_id
    refund.updated_at = func.now()
    order.payment_status = PaymentStatus.REFUNDED.value
    order.updated_at = func.now()
    record_event(
        session,
        order_id,
        "payment_refunded",
        SYSTEM_ACTOR,
        {"refund_id": refund_id, "amount": amount.amount, "currency": amount.currency},
    )


def _payment(session: Session, order_id: str, kind: str) -> Payment | None:
    return session.scalar(
        select(Payment)
        .where(Payment.order_id == order_id, Payment.kind == kind)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
