"""Refunding a cancelled (or failed) order that was paid: once, in full, never more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.charging import (
    Anomaly,
    Reporter,
    ReportOutcome,
    record_payment_anomaly,
)
from orderflow.idempotency import refund_idempotency_key
from orderflow.money import Money
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.payments import PaymentProvider, PaymentRejected
from orderflow.statuses import OrderStatus, PaymentRecordStatus, PaymentStatus

log = structlog.get_logger(__name__)

_REFUNDABLE_ORDERS = (OrderStatus.CANCELLED, OrderStatus.FAILED)
_SUCCEEDED = PaymentRecordStatus.SUCCEEDED


@dataclass(frozen=True)
class RefundRequest:
    order_id: str
    payment_intent_id: str
    amount: Money


def refund_payment(database: Database, provider: PaymentProvider, order_id: str) -> None:
    with database.unit_of_work() as session:
        request = begin_refund(session, order_id)
        session.commit()
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
        session.commit()


def begin_refund(session: Session, order_id: str) -> RefundRequest | None:
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id, lock=True)
    if order.status not in _REFUNDABLE_ORDERS or charge is None or charge.status != _SUCCEEDED:
        return None
    refund = orders.refund_of(order_id)
    if refund is None:
        refund = orders.start_refund(order_id, Money(charge.amount, charge.currency))
    elif refund.status == _SUCCEEDED:
        return None
    assert charge.provider_id is not None
    return RefundRequest(order_id, charge.provider_id, Money(refund.amount, refund.currency))


def record_refund_report(
    session: Session, order_id: str, intent_id: str, refund_id: str | None, amount: Money
) -> ReportOutcome:
    """A refund the provider announced (``charge.refunded``): recorded only when it is of
    the order's own captured intent, in its currency and within what was captured;
    anything else is a payment anomaly and changes nothing."""
    orders = OrderRepository(session)
    orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id, lock=True)
    if charge is None or charge.status != _SUCCEEDED:
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
    record_payment_anomaly(orders, order_id, reason, Reporter.WEBHOOK, details)
    return ReportOutcome.ANOMALY


def record_refund(session: Session, order_id: str, refund_id: str | None, amount: Money) -> None:
    """Record a refund the provider made; a second report of it changes nothing."""
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id, lock=True)
    refund = orders.refund_of(order_id)
    if charge is None or charge.status != _SUCCEEDED or (refund and refund.status == _SUCCEEDED):
        return
    if amount.amount > charge.amount:
        raise ValueError(f"refund of {amount} exceeds the {charge.amount} captured")
    if refund is None:
        refund = orders.start_refund(order_id, amount)
    orders.update_payment(refund, status=_SUCCEEDED, amount=amount.amount, provider_id=refund_id)
    orders.update(order, payment_status=PaymentStatus.REFUNDED)
    orders.record_event(
        order_id,
        OrderEventType.PAYMENT_REFUNDED,
        SYSTEM_ACTOR,
        {"refund_id": refund_id, "amount": amount.amount, "currency": amount.currency},
    )
