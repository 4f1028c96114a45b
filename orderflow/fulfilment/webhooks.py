"""Payment provider events (verified by the API) applied to orders.

Each event id is stored the first time it is seen, in the same transaction as its effect, so
a redelivered event is acknowledged and changes nothing. Effects go through the same
recording functions the worker uses, which never apply an outcome twice or downgrade one,
and apply a report only when it matches the order's own charge (``charging``'s rule): an
event is a claim, whoever signed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from orderflow.fulfilment.charging import Reporter, record_charge_result
from orderflow.fulfilment.refunds import ReportedRefund, reconcile_refund
from orderflow.models import WebhookEvent
from orderflow.money import Money
from orderflow.orders.repository import OrderRepository
from orderflow.payments import IntentStatus, PaymentResult

log = structlog.get_logger(__name__)

_INTENT_OUTCOMES = {
    "payment_intent.succeeded": IntentStatus.SUCCEEDED,
    "payment_intent.payment_failed": IntentStatus.DECLINED,
}


@dataclass(frozen=True)
class ProviderEvent:
    id: str
    type: str
    object: dict[str, Any]


def handle_payment_event(session: Session, event: ProviderEvent) -> str:
    """Apply one event; answer what happened (``applied``, ``duplicate``, ``ignored``)."""
    first_time = session.execute(
        insert(WebhookEvent)
        .values(id=event.id, provider="stripe", type=event.type)
        .on_conflict_do_nothing()
        .returning(WebhookEvent.id)
    ).first()
    if first_time is None:
        return "duplicate"
    if event.type in _INTENT_OUTCOMES:
        intent_id = str(event.object.get("id"))
        metadata = event.object.get("metadata") or {}
        return _apply_intent(session, event, intent_id, metadata.get("order_id"))
    if event.type == "charge.refunded":
        return _apply_charge_refunds(session, event)
    if event.type in ("refund.updated", "refund.failed"):
        return _apply_refund(session, event, event.object)
    return "ignored"


def _apply_intent(
    session: Session, event: ProviderEvent, intent_id: str, metadata_order_id: str | None
) -> str:
    order_id = find_order_id(session, intent_id, metadata_order_id)
    if order_id is None:
        log.info("webhook for an unknown payment intent", event_id=event.id, intent_id=intent_id)
        return "ignored"
    error = event.object.get("last_payment_error") or {}
    result = PaymentResult(
        intent_id=intent_id,
        status=_INTENT_OUTCOMES[event.type],
        amount=Money(_amount_of(event.object), str(event.object["currency"])),
        decline_code=error.get("decline_code") or error.get("code"),
        order_id=metadata_order_id,  # what the report says, checked against the order
    )
    _mark_event_order(session, event.id, order_id)
    return record_charge_result(session, result, order_id=order_id, reporter=Reporter.WEBHOOK)


def _amount_of(intent: dict[str, Any]) -> int:
    """What a succeeded intent received (``amount_received``), else what it asks for."""
    received = intent.get("amount_received")
    if intent.get("status") == "succeeded" and received is not None:
        return int(received)
    return int(intent["amount"])


def _apply_charge_refunds(session: Session, event: ProviderEvent) -> str:
    """A charge's refunds, as ``charge.refunded`` lists them: each reconciled on its own."""
    refunds = (event.object.get("refunds") or {}).get("data") or []
    outcomes = {
        _apply_refund(
            session, event, {**refund, "payment_intent": event.object.get("payment_intent"),
                             "metadata": refund.get("metadata") or event.object.get("metadata")},
        )
        for refund in refunds
    }  # fmt: skip
    return "anomaly" if "anomaly" in outcomes else ("applied" if outcomes else "ignored")


def _apply_refund(session: Session, event: ProviderEvent, refund: dict[str, Any]) -> str:
    intent_id = str(refund.get("payment_intent"))
    metadata = refund.get("metadata") or {}
    order_id = find_order_id(session, intent_id, metadata.get("order_id"))
    if order_id is None:
        return "ignored"
    _mark_event_order(session, event.id, order_id)
    report = ReportedRefund(
        provider_id=str(refund["id"]),
        amount=Money(int(refund["amount"]), str(refund["currency"])),
        status=str(refund.get("status") or "succeeded"),
        refund_id=metadata.get("refund_id"),
        failure_code=refund.get("failure_reason"),
    )
    return reconcile_refund(session, order_id, intent_id, report)


def find_order_id(session: Session, intent_id: str, metadata_order_id: str | None) -> str | None:
    """By the intent id we recorded, then by the ``metadata.order_id`` we set on it."""
    orders = OrderRepository(session)
    by_intent = orders.order_id_for_intent(intent_id)
    if by_intent is not None:
        return by_intent
    if metadata_order_id and orders.exists(metadata_order_id):
        return metadata_order_id
    return None


def _mark_event_order(session: Session, event_id: str, order_id: str) -> None:
    stored = session.get(WebhookEvent, event_id)
    if stored is not None:
        stored.order_id = order_id
