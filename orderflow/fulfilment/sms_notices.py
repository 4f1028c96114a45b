"""Shipped and delivered notices by SMS: once per order and kind, to customers who opted in.

When an order moves to ``shipped`` or ``delivered`` (``moves.move``), :func:`owe_sms` records
in the move's transaction that the text is owed, if the customer has a phone and opted in
then, and schedules the send step through the outbox. Deciding at the move, not at the
sweep, means a customer who opts in later is not sent notices of old orders.

:func:`send_sms` claims the row, composes the text at the first attempt and freezes it in
the row, calls the provider, and settles the row. Twilio has no idempotency key, so the
question is what a retry does after an attempt whose outcome is unknown: a read timeout after
Twilio accepted the text, or a worker killed between Twilio's answer and the commit. Every
attempt after the first asks the provider first (``SmsSender.find_sent``: the latest texts
to that phone, compared by body, which names the order and the kind) and sends only if the
text is not there. The window left is a text Twilio accepted but does not list yet when
the retry asks; the backoff between attempts (a second or more) makes that unlikely.
"""

from __future__ import annotations

from enum import StrEnum

import structlog
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.event_types import OrderEventType
from orderflow.idempotency import sms_message_key
from orderflow.metrics import SMS_MESSAGES
from orderflow.models import Order, User
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.shipments.repository import ShipmentRepository
from orderflow.shipments.state import UNDER_WAY
from orderflow.sms import (
    SmsMessage,
    SmsProviderMisconfigured,
    SmsProviderUnavailable,
    SmsRejected,
    SmsSender,
)
from orderflow.sms.repository import SmsRepository
from orderflow.statuses import OrderStatus, SmsStatus
from orderflow.steps import SmsKind, Step, schedule

log = structlog.get_logger(__name__)

#: The move that owes each text.
STATUS_SMS = {OrderStatus.SHIPPED: SmsKind.SHIPPED, OrderStatus.DELIVERED: SmsKind.DELIVERED}
#: The statuses in which each text still makes sense (a shipped order may be delivered by
#: the time its "shipped" text goes: it still goes, as the e-mail does).
SMS_STATUSES: dict[SmsKind, tuple[OrderStatus, ...]] = {
    SmsKind.SHIPPED: (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
    SmsKind.DELIVERED: (OrderStatus.DELIVERED,),
}
#: Shipments named in a "shipped" text; the rest are counted.
MAX_SHIPMENTS_NAMED = 3


class SmsOutcome(StrEnum):
    NOTHING = "nothing"  # not owed, settled already, or another worker holds it
    SENT = "sent"
    FOUND = "found"
    FAILED = "failed"
    SKIPPED = "skipped"


def owe_sms(session: Session, order: Order, target: OrderStatus) -> None:
    """In the transaction that moves ``order`` to ``target``: if that move has a text and
    the customer opted in with a phone, record it as owed and schedule its step."""
    kind = STATUS_SMS.get(target)
    if kind is None:
        return
    customer = session.get(User, order.customer_id)
    if customer is None or not customer.sms_opt_in or customer.phone is None:
        return
    if SmsRepository(session).owe(order.id, kind.value, customer.phone):
        schedule(session, Step.SEND_SMS, order.id, kind=kind.value)


def send_sms(database: Database, sender: SmsSender, order_id: str, kind: SmsKind) -> SmsOutcome:
    """Send the owed text once (see the module's docstring). A transient provider error
    gives the claim back and is raised for the step to retry; so are refused credentials
    (ours to fix: the sweeper tries again until they work); a refusal of the text itself
    settles it as ``failed`` for good."""
    with database.unit_of_work() as session:
        claimed = _claim(session, order_id, kind)
        session.commit()
    if isinstance(claimed, SmsOutcome):
        _count(kind, claimed)
        return claimed
    message, attempts = claimed
    try:
        provider_id = sender.find_sent(message) if attempts > 1 else None
        outcome = SmsOutcome.FOUND if provider_id is not None else SmsOutcome.SENT
        if provider_id is None:
            provider_id = sender.send(message)
    except SmsRejected as error:
        if isinstance(error, SmsProviderMisconfigured):  # ours to fix: the text stays owed
            _release(database, order_id, kind)
            raise
        _settle(database, order_id, kind, SmsStatus.FAILED, error=str(error))
        log.warning("sms refused by the provider", order_id=order_id, kind=kind.value,
                    error=str(error))  # fmt: skip
        _count(kind, SmsOutcome.FAILED)
        return SmsOutcome.FAILED
    except BaseException as error:
        _release(database, order_id, kind)  # a retry may send it now
        if isinstance(error, SmsProviderUnavailable):
            _count(kind, "unavailable")
        raise
    _settle(database, order_id, kind, SmsStatus.SENT, provider_message_id=provider_id)
    _count(kind, outcome)
    return outcome


def _claim(session: Session, order_id: str, kind: SmsKind) -> tuple[SmsMessage, int] | SmsOutcome:
    texts = SmsRepository(session)
    claim = texts.claim(order_id, kind.value)
    if claim is None:
        return SmsOutcome.NOTHING
    found = OrderRepository(session).with_customer(order_id)
    if found is None:  # the row's foreign key makes this impossible; be explicit
        return SmsOutcome.NOTHING
    order, customer = found
    if claim.body is None:  # the first attempt: compose, to the customer's number now
        if not customer.sms_opt_in or customer.phone is None:
            texts.settle(order_id, kind.value, SmsStatus.SKIPPED, error="opted out")
            return SmsOutcome.SKIPPED
        if order.status not in SMS_STATUSES[kind]:
            texts.settle(order_id, kind.value, SmsStatus.SKIPPED, error=f"order {order.status}")
            return SmsOutcome.SKIPPED
        body = compose(session, order, kind)
        texts.fix_text(order_id, kind.value, customer.phone, body)
        claim_body, recipient = body, customer.phone
    else:
        claim_body, recipient = claim.body, claim.recipient
    message = SmsMessage(
        to=recipient, body=claim_body, message_key=sms_message_key(order_id, kind.value)
    )
    return message, claim.attempts


def _release(database: Database, order_id: str, kind: SmsKind) -> None:
    with database.unit_of_work() as session:
        SmsRepository(session).release(order_id, kind.value)
        session.commit()


def _settle(
    database: Database,
    order_id: str,
    kind: SmsKind,
    status: SmsStatus,
    *,
    provider_message_id: str | None = None,
    error: str | None = None,
) -> None:
    with database.unit_of_work() as session:
        settled = SmsRepository(session).settle(
            order_id, kind.value, status, provider_message_id=provider_message_id, error=error
        )
        if settled and status is SmsStatus.SENT:
            OrderRepository(session).record_event(
                order_id, OrderEventType.SMS_SENT, SYSTEM_ACTOR, {"kind": kind.value}
            )
        session.commit()


def _count(kind: SmsKind, outcome: str) -> None:
    if outcome != SmsOutcome.NOTHING:
        SMS_MESSAGES.labels(kind.value, str(outcome)).inc()


def compose(session: Session, order: Order, kind: SmsKind) -> str:
    """The text: short, plain ASCII where the data allows, naming the order (which also
    makes it unique per order and kind: ``find_sent`` compares bodies)."""
    if kind is SmsKind.DELIVERED:
        return f"orderflow: your order {order.id} was delivered. Enjoy! Reply STOP to opt out."
    under_way = [
        shipment
        for shipment in ShipmentRepository(session).of_order(order.id)
        if shipment.status in UNDER_WAY and shipment.tracking_number
    ]
    tracking = [
        " ".join(
            part
            for part in (
                (shipment.carrier or "").upper(),
                str(shipment.tracking_number),
                shipment.tracking_url or "",
            )
            if part
        )
        for shipment in under_way[:MAX_SHIPMENTS_NAMED]
    ]
    if len(under_way) > MAX_SHIPMENTS_NAMED:
        tracking.append(f"and {len(under_way) - MAX_SHIPMENTS_NAMED} more parcels")
    track = f" Tracking: {'; '.join(tracking)}." if tracking else ""
    return f"orderflow: your order {order.id} has shipped.{track} Reply STOP to opt out."
