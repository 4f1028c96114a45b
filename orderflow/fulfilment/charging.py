"""Charging an order and recording what the provider says, from the worker or a webhook.

The provider call happens between two short transactions, never while a row lock is held:
the first marks the charge as processing and fixes its idempotency key, the second records
the result. Recording is idempotent and never downgrades a final result, so the worker,
a retry, the reconciler and any number of (re)delivered webhooks may all report the same
outcome in any order and the order moves once.

**Payments are matched, never assumed.** A report of how a payment went is applied to an
order only when

1. it is about the order's own PaymentIntent: the one recorded on the order's charge, or,
   while none is recorded yet, the one the provider returned to *our* call made with the
   order's charge idempotency key (a webhook about an intent we have not recorded is never
   applied: the charge step is scheduled to ask the provider with that key instead, and
   whatever the provider answers is recorded); an intent whose ``metadata.order_id`` names
   another order is never the order's own; and
2. for a success, the amount and currency received equal the charge we asked for.

Anything else is a **payment anomaly**: an ``payment_anomaly`` event on the order, a
warning in the log and ``orderflow_payment_anomalies_total``; nothing else changes. A
webhook's wrong amount about the order's own intent also makes the charge step ask the
provider by the recorded id, so a forged or garbled event cannot stall a real payment. A
success with the wrong amount reported by the provider itself means money really moved:
the charge is recorded with what was captured, the order fails with
``payment_amount_mismatch`` and the capture is refunded in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.moves import confirm_order, fail_order
from orderflow.fulfilment.refund_requests import refund_in_full
from orderflow.fulfilment.reservations import has_reservations
from orderflow.idempotency import charge_idempotency_key
from orderflow.models import Order, Payment
from orderflow.money import Money
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.payments import (
    IntentStatus,
    PaymentProvider,
    PaymentProviderMisconfigured,
    PaymentRejected,
    PaymentResult,
)
from orderflow.statuses import OrderStatus, PaymentRecordStatus, PaymentStatus
from orderflow.steps import Step, schedule

log = structlog.get_logger(__name__)

PAYMENT_DECLINED = "payment_declined"
PAYMENT_REJECTED = "payment_rejected"
PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
PROVIDER_MISCONFIGURED = "payment_provider_misconfigured"
PAYMENT_AMOUNT_MISMATCH = "payment_amount_mismatch"


#: A charge the provider may still be working on.
_IN_FLIGHT = (PaymentRecordStatus.PROCESSING, PaymentRecordStatus.REQUIRES_ACTION)


class Reporter(StrEnum):
    """Who tells how a payment went. The provider's answer to our own call (a charge made
    with the order's idempotency key, or a retrieve of the intent we recorded) is the truth;
    a webhook is a claim, signed by someone able to sign for the account."""

    PROVIDER = "provider"
    WEBHOOK = "webhook"


class ReportOutcome(StrEnum):
    """What became of a report (the webhook route answers it as ``outcome``)."""

    APPLIED = "applied"
    #: About an intent not recorded yet: the charge step asks the provider with our key.
    VERIFYING = "verifying"
    ANOMALY = "anomaly"


class Anomaly(StrEnum):
    """Why a report was not applied (``reason`` of a ``payment_anomaly`` event)."""

    NO_CHARGE = "no_charge_started"
    FOREIGN_INTENT = "foreign_intent"
    AMOUNT_MISMATCH = PAYMENT_AMOUNT_MISMATCH


@dataclass(frozen=True)
class ChargeRequest:
    order_id: str
    amount: Money
    payment_method: str
    idempotency_key: str
    #: Set when the provider already knows the intent and only its state is wanted.
    known_intent_id: str | None = None


def charge_payment(database: Database, provider: PaymentProvider, order_id: str) -> None:
    """Charge a pending order whose stock is reserved. Raises ``PaymentProviderUnavailable``
    for the caller to retry; everything else ends in a recorded outcome."""
    with database.unit_of_work() as session:
        request = begin_charge(session, order_id)
        session.commit()
    if request is None:
        return
    try:
        if request.known_intent_id is not None:
            result = provider.retrieve(request.known_intent_id)
        else:
            result = provider.charge(
                order_id=request.order_id,
                amount=request.amount,
                payment_method=request.payment_method,
                idempotency_key=request.idempotency_key,
            )
    except PaymentProviderMisconfigured as error:
        log.error("payment provider refused our credentials", order_id=order_id, code=error.code)
        with database.unit_of_work() as session:
            give_up_charge(session, order_id, PROVIDER_MISCONFIGURED)
            session.commit()
        return
    except PaymentRejected as error:
        log.warning("payment rejected by provider", order_id=order_id, code=error.code)
        with database.unit_of_work() as session:
            reject_charge(session, order_id, error.code)
            session.commit()
        return
    with database.unit_of_work() as session:
        record_charge_result(session, result, order_id=order_id)
        session.commit()


def begin_charge(session: Session, order_id: str) -> ChargeRequest | None:
    """Decide whether the order needs a provider call now, and with which key."""
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id)
    if order.status != OrderStatus.PENDING:
        return _unfinished_charge_of_ended_order(order, charge)
    if not has_reservations(session, order_id):
        return None
    if charge is None:
        attempt, known_intent_id = 1, None
        orders.start_charge(order_id, order.total, attempt)
    elif charge.status.is_final:
        return None
    else:
        if charge.status == PaymentRecordStatus.UNAVAILABLE:
            orders.update_payment(charge, status=PaymentRecordStatus.PROCESSING)
        attempt = charge.attempt
        # Once an intent is recorded, its current state is asked for by id: replaying the
        # key would only repeat the provider's first answer.
        known_intent_id = charge.provider_id or None
    orders.update(order, payment_status=PaymentStatus.PROCESSING)
    return ChargeRequest(
        order_id=order_id,
        amount=order.total,
        payment_method=order.payment_method,
        idempotency_key=charge_idempotency_key(order_id, attempt),
        known_intent_id=known_intent_id,
    )


def _unfinished_charge_of_ended_order(order: Order, charge: Payment | None) -> ChargeRequest | None:
    """An order cancelled (or failed) while its charge was in flight: ask the provider how that
    charge ended, by the intent if we know it, else by replaying the same key, so a capture
    the worker never recorded is found and refunded instead of kept."""
    if charge is None or charge.status not in _IN_FLIGHT:
        return None
    return ChargeRequest(
        order_id=order.id,
        amount=Money(charge.amount, charge.currency),
        payment_method=order.payment_method,
        idempotency_key=charge_idempotency_key(order.id, charge.attempt),
        known_intent_id=charge.provider_id or None,
    )


def record_charge_result(
    session: Session,
    result: PaymentResult,
    *,
    order_id: str,
    reporter: Reporter = Reporter.PROVIDER,
) -> ReportOutcome:
    """Apply what was reported about the order's PaymentIntent, if it matches (see the
    module's docstring). Safe to repeat."""
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id, lock=True)
    anomaly = _mismatch(order_id, charge, result, reporter)
    if anomaly is not None or charge is None:
        _record_anomaly(orders, order, result, reporter, anomaly or Anomaly.NO_CHARGE, charge)
        return ReportOutcome.ANOMALY
    if not charge.provider_id and reporter is Reporter.WEBHOOK:
        if charge.status.is_final:
            _record_anomaly(orders, order, result, reporter, Anomaly.FOREIGN_INTENT, charge)
            return ReportOutcome.ANOMALY
        log.info("payment report awaits the provider", order_id=order_id, intent=result.intent_id)
        schedule(session, Step.CHARGE_PAYMENT, order_id)
        return ReportOutcome.VERIFYING
    if result.succeeded and result.amount != Money(charge.amount, charge.currency):
        return _wrong_amount(orders, order, charge, result, reporter)
    if charge.status.is_final and (
        charge.status == PaymentRecordStatus.SUCCEEDED or not result.succeeded
    ):
        return ReportOutcome.APPLIED  # already recorded, or a late failure after a success
    _apply(orders, order, charge, result)
    return ReportOutcome.APPLIED


def _wrong_amount(
    orders: OrderRepository,
    order: Order,
    charge: Payment,
    result: PaymentResult,
    reporter: Reporter,
) -> ReportOutcome:
    """Rule 2 broken. A webhook's claim changes nothing but makes the charge step ask the
    provider by the recorded id; the provider's own word is money that moved."""
    if charge.status == PaymentRecordStatus.SUCCEEDED:  # whatever is claimed now is wrong
        _record_anomaly(orders, order, result, reporter, Anomaly.AMOUNT_MISMATCH, charge)
        return ReportOutcome.ANOMALY
    if reporter is Reporter.WEBHOOK:
        _record_anomaly(orders, order, result, reporter, Anomaly.AMOUNT_MISMATCH, charge)
        schedule(orders.session, Step.CHARGE_PAYMENT, order.id)
        return ReportOutcome.ANOMALY
    _record_mismatched_capture(orders, order, charge, result)
    return ReportOutcome.APPLIED


def _mismatch(
    order_id: str, charge: Payment | None, result: PaymentResult, reporter: Reporter
) -> Anomaly | None:
    """Rule 1 of the module's docstring: is the report about the order's own intent?"""
    if charge is None:
        return Anomaly.NO_CHARGE
    if result.order_id is not None and result.order_id != order_id:
        return Anomaly.FOREIGN_INTENT
    if charge.provider_id and result.intent_id != charge.provider_id:
        return Anomaly.FOREIGN_INTENT
    return None


def _apply(orders: OrderRepository, order: Order, charge: Payment, result: PaymentResult) -> None:
    """Record a matched report. Each row is written by one UPDATE, with the outcome."""
    charge_changes: dict[str, Any] = {"provider_id": result.intent_id}
    order_changes: dict[str, Any] = {}
    if order.payment_intent_id is None:
        order_changes["payment_intent_id"] = result.intent_id
    if result.status is IntentStatus.SUCCEEDED:
        _record_success(orders, order, charge, result, charge_changes, order_changes)
    elif result.status is IntentStatus.DECLINED:
        _record_decline(
            orders, order, charge, result.decline_code,
            charge_changes=charge_changes, order_changes=order_changes,
        )  # fmt: skip
    elif (
        result.status is IntentStatus.REQUIRES_ACTION
        and charge.status != PaymentRecordStatus.REQUIRES_ACTION
    ):
        orders.update_payment(charge, status=PaymentRecordStatus.REQUIRES_ACTION, **charge_changes)
        if order_changes:
            orders.update(order, **order_changes)
        else:
            orders.touch(order)
        orders.record_event(
            order.id,
            OrderEventType.PAYMENT_REQUIRES_ACTION,
            SYSTEM_ACTOR,
            {"payment_intent_id": result.intent_id},
        )
    else:
        orders.update_payment(charge, **charge_changes)
        if order_changes:
            orders.update(order, **order_changes)


def _record_anomaly(
    orders: OrderRepository,
    order: Order,
    result: PaymentResult,
    reporter: Reporter,
    reason: Anomaly,
    charge: Payment | None,
) -> None:
    expected = None if charge is None else {"amount": charge.amount, "currency": charge.currency}
    record_payment_anomaly(
        orders,
        order.id,
        reason,
        reporter,
        {
            "payment_intent_id": result.intent_id,
            "recorded_intent_id": None if charge is None else charge.provider_id,
            "status": result.status.value,
            "amount": result.amount.amount,
            "currency": result.amount.currency,
            "expected": expected,
        },
    )


def record_payment_anomaly(
    orders: OrderRepository,
    order_id: str,
    reason: Anomaly,
    reporter: Reporter,
    details: dict[str, Any],
) -> None:
    """A report that does not match the order's payments: on the record (an order event,
    counted in ``orderflow_payment_anomalies_total`` when it commits) and in the log at
    warning; nothing else changes."""
    data = {"reason": reason.value, "reported_by": reporter.value, **details}
    log.warning("payment anomaly", order_id=order_id, **data)
    orders.record_event(order_id, OrderEventType.PAYMENT_ANOMALY, SYSTEM_ACTOR, data)


def _record_mismatched_capture(
    orders: OrderRepository, order: Order, charge: Payment, result: PaymentResult
) -> None:
    """The provider itself captured another amount (or currency) than we asked for: keep
    what it captured on the record, fail the order and give the money back in full."""
    _record_anomaly(orders, order, result, Reporter.PROVIDER, Anomaly.AMOUNT_MISMATCH, charge)
    orders.update_payment(
        charge,
        status=PaymentRecordStatus.SUCCEEDED,
        provider_id=result.intent_id,
        amount=result.amount.amount,
        currency=result.amount.currency,
        decline_code=None,
    )
    paid: dict[str, Any] = {
        "payment_status": PaymentStatus.PAID,
        "captured_amount": result.amount.amount,
    }
    if order.payment_intent_id is None:
        paid["payment_intent_id"] = result.intent_id
    if order.status == OrderStatus.PENDING:
        fail_order(orders, order, PAYMENT_AMOUNT_MISMATCH, **paid)
    else:
        orders.update(order, **paid)
    refund_in_full(orders, order, PAYMENT_AMOUNT_MISMATCH)


def give_up_charge(session: Session, order_id: str, reason: str) -> None:
    """Retries are exhausted: park the order under a named reason an operator can re-drive.
    The order stays pending with its stock held; ``orderflow redrive`` picks it up."""
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id, lock=True)
    if order.status != OrderStatus.PENDING or charge is None or charge.status.is_final:
        return
    orders.update_payment(charge, status=PaymentRecordStatus.UNAVAILABLE)
    orders.update(order, failure_reason=reason)
    orders.record_event(
        order_id, OrderEventType.PAYMENT_UNAVAILABLE, SYSTEM_ACTOR, {"reason": reason}
    )


def reject_charge(session: Session, order_id: str, code: str | None) -> None:
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    charge = orders.charge_of(order_id, lock=True)
    if charge is None or charge.status.is_final:
        return
    _record_decline(orders, order, charge, code or PAYMENT_REJECTED, reason=PAYMENT_REJECTED)


def _record_success(
    orders: OrderRepository,
    order: Order,
    charge: Payment,
    result: PaymentResult,
    charge_changes: dict[str, Any],
    order_changes: dict[str, Any],
) -> None:
    orders.update_payment(
        charge, status=PaymentRecordStatus.SUCCEEDED, decline_code=None, **charge_changes
    )
    paid = {
        **order_changes,
        "payment_status": PaymentStatus.PAID,
        "failure_reason": None,
        "captured_amount": charge.amount,
    }
    orders.record_event(
        order.id,
        OrderEventType.PAYMENT_SUCCEEDED,
        SYSTEM_ACTOR,
        {
            "payment_intent_id": result.intent_id,
            "amount": result.amount.amount,
            "currency": result.amount.currency,
        },
    )
    if order.status == OrderStatus.PENDING:
        confirm_order(orders, order, **paid)
    else:
        # Captured after the order was cancelled or failed: the money goes back.
        orders.update(order, **paid)
        log.warning("payment captured for an order no longer pending", order_id=order.id)
        refund_in_full(orders, order)


def _record_decline(
    orders: OrderRepository,
    order: Order,
    charge: Payment,
    code: str | None,
    reason: str = PAYMENT_DECLINED,
    *,
    charge_changes: dict[str, Any] | None = None,
    order_changes: dict[str, Any] | None = None,
) -> None:
    orders.update_payment(
        charge, status=PaymentRecordStatus.DECLINED, decline_code=code, **(charge_changes or {})
    )
    unpaid = {**(order_changes or {}), "payment_status": PaymentStatus.FAILED}
    orders.record_event(
        order.id,
        OrderEventType.PAYMENT_FAILED,
        SYSTEM_ACTOR,
        {"payment_intent_id": charge.provider_id, "decline_code": code},
    )
    if order.status == OrderStatus.PENDING:
        fail_order(orders, order, reason, **unpaid)
    else:
        orders.update(order, **unpaid)
