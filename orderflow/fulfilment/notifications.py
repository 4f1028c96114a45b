"""Customer e-mails: one of each kind per order, whatever retries happen.

A row per (order, kind) is claimed before the provider is called and marked sent after. A
retry after a crash between the provider's answer and that mark first asks the provider
whether it has a message with the same key (``EmailSender.find_sent``) and marks that one
sent. SendGrid offers no idempotency key, so where its Email Activity look-up cannot tell
(no access, or the message not in its feed yet) the e-mail goes again with the same
Message-ID: the one place an e-mail can reach the provider twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.email import EmailMessage, EmailSender
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.invoicing import INVOICED_STATUSES
from orderflow.idempotency import email_message_key
from orderflow.models import EmailRecord, Order, OrderEvent, Refund, Shipment, User, table_of
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.shipments.repository import ShipmentRepository
from orderflow.statuses import OrderStatus, RefundStatus, ShipmentStatus
from orderflow.steps import EmailKind

#: The statuses that call for each e-mail; an order that moved on is owed the earlier ones.
EMAIL_STATUSES: dict[EmailKind, tuple[OrderStatus, ...]] = {
    EmailKind.CONFIRMATION: INVOICED_STATUSES,
    EmailKind.SHIPPED: (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
    EmailKind.DELIVERED: (OrderStatus.DELIVERED,),
    EmailKind.CANCELLED: (OrderStatus.CANCELLED,),
    EmailKind.FAILED: (OrderStatus.FAILED,),
}

#: Kinds sent once per refund or per change of the order, not once per order.
PER_OCCURRENCE = frozenset({EmailKind.REFUNDED, EmailKind.UPDATED})
#: The ``order_updated`` entries of a change asked for (``PATCH /orders/{id}``) name the
#: ``items`` changed; those the order's own life writes (a refund, its shipping status) do
#: not, and are owed no e-mail.
CHANGE_BY_REQUEST = "items"
#: How far back the sweeper looks for those that are owed.
OCCURRENCE_WINDOW = timedelta(days=3)

#: How long a claim protects a send in progress; past it, the sender is presumed dead (a
#: send takes at most the provider timeout and its retries' backoff is outside the claim).
CLAIM_LEASE = timedelta(minutes=2)

_SUBJECTS = {
    EmailKind.CONFIRMATION: "Your order {id} is confirmed",
    EmailKind.SHIPPED: "Your order {id} is on its way",
    EmailKind.DELIVERED: "Your order {id} was delivered",
    EmailKind.CANCELLED: "Your order {id} was cancelled",
    EmailKind.FAILED: "We could not complete your order {id}",
    EmailKind.REFUNDED: "We refunded {amount} for your order {id}",
    EmailKind.UPDATED: "Your order {id} was changed",
}


def send_email(
    database: Database,
    sender: EmailSender,
    order_id: str,
    kind: EmailKind,
    occurrence: str | None = None,
) -> None:
    """Send the order's e-mail of ``kind`` once; for the kinds sent once per refund or per
    change (``PER_OCCURRENCE``), once per ``occurrence`` (the refund's or the change's id)."""
    key = claim_key(kind, occurrence)
    with database.unit_of_work() as session:
        claimed = claim_email(session, order_id, kind, occurrence)
        session.commit()
    if claimed is None:
        return
    message = claimed.message
    try:
        # After an attempt that may have reached the provider, ask it before sending again.
        provider_id = sender.find_sent(message) if claimed.retried else None
        if provider_id is None:
            provider_id = sender.send(message)
    except Exception:
        with database.unit_of_work() as session:
            release_claim(session, order_id, key)  # a retry may send it now
            session.commit()
        raise
    with database.unit_of_work() as session:
        mark_sent(session, order_id, key, provider_id)
        session.commit()


def claim_key(kind: EmailKind, occurrence: str | None = None) -> str:
    """What an e-mail is claimed under, with its order: its kind, and for the kinds sent
    once per refund or change, that refund's or change's id (``refunded:ref_…``)."""
    if kind in PER_OCCURRENCE:
        if not occurrence:
            raise ValueError(f"a {kind.value} e-mail is sent for a refund or a change: name it")
        return f"{kind.value}:{occurrence}"
    return kind.value


@dataclass(frozen=True)
class ClaimedEmail:
    message: EmailMessage
    #: An earlier attempt claimed it and never marked it sent: killed mid-send, timed out,
    #: or refused. Whether the provider took it is unknown.
    retried: bool


def claim_email(
    session: Session, order_id: str, kind: EmailKind, occurrence: str | None = None
) -> ClaimedEmail | None:
    orders = OrderRepository(session)
    found = orders.with_customer(order_id)
    if found is None:
        return None
    order, customer = found
    refund = None
    if kind is EmailKind.REFUNDED:
        refund = orders.refund(occurrence or "")
        if refund is None or refund.order_id != order_id or refund.status != RefundStatus.SUCCEEDED:
            return None
    elif kind not in PER_OCCURRENCE and order.status not in EMAIL_STATUSES[kind]:
        return None
    if kind is EmailKind.CONFIRMATION and order.invoice_number is None:
        return None
    key = claim_key(kind, occurrence)
    new = {"order_id": order_id, "kind": key, "status": "sending"}
    first = session.execute(_CLAIM_NEW, {**new, "recipient": customer.email}).first()
    claimed = first or session.execute(_RECLAIM_ABANDONED, _email_key(order_id, key)).first()
    # Not claimed: already sent, or another worker is sending it right now.
    if claimed is None:
        return None
    parcels: list[Shipment] = []
    if kind is EmailKind.SHIPPED:
        parcels = [shipment for shipment in ShipmentRepository(session).of_order(order_id)
                   if shipment.status is not ShipmentStatus.CANCELLED]  # fmt: skip
    return ClaimedEmail(compose(order, customer, kind, key, refund, parcels), first is None)


def release_claim(session: Session, order_id: str, key: str) -> None:
    session.execute(_RELEASE_CLAIM, _email_key(order_id, key))


def mark_sent(session: Session, order_id: str, key: str, provider_id: str) -> None:
    marked = session.execute(
        _MARK_SENT, {**_email_key(order_id, key), "provider_message_id": provider_id}
    ).first()
    if marked is not None:  # not marked already, by a retry that raced this one
        kind, _, occurrence = key.partition(":")
        data = {"kind": kind} | ({"for": occurrence} if occurrence else {})
        OrderRepository(session).record_event(
            order_id, OrderEventType.EMAIL_SENT, SYSTEM_ACTOR, data
        )


def owed_per_occurrence(
    session: Session, cutoff: datetime, limit: int
) -> list[tuple[str, EmailKind, dict[str, str]]]:
    """E-mails owed for a refund that succeeded or a change made before ``cutoff`` (and
    within ``OCCURRENCE_WINDOW``, so a deploy does not mail every refund of the past):
    (order id, kind, the send step's keyword for the occurrence)."""
    since = cutoff - OCCURRENCE_WINDOW
    refunds = session.execute(_OWED_REFUND_EMAILS, {"cutoff": cutoff, "since": since,
                                                    "limit": limit}).all()  # fmt: skip
    changes = session.execute(_OWED_CHANGE_EMAILS, {"cutoff": cutoff, "since": since,
                                                    "limit": limit}).all()  # fmt: skip
    return [
        *((str(o), EmailKind.REFUNDED, {"refund_id": str(r)}) for o, r in refunds),
        *((str(o), EmailKind.UPDATED, {"change_id": str(c)}) for o, c in changes),
    ]


def _email_key(order_id: str, key: str) -> dict[str, str]:
    return {"email_order_id": order_id, "email_kind": key}


_emails = table_of(EmailRecord)
_this_email = (_emails.c.order_id == bindparam("email_order_id")) & (
    _emails.c.kind == bindparam("email_kind")
)
# Built once (compiled and cache-keyed once): every e-mail runs several of them.
_CLAIM_NEW = (
    insert(_emails)
    .values(claimed_at=func.now())
    .on_conflict_do_nothing(constraint="emails_one_per_kind")
    .returning(_emails.c.id)
)
_RECLAIM_ABANDONED = (
    update(_emails)
    .where(
        _this_email,
        _emails.c.status == "sending",
        or_(_emails.c.claimed_at.is_(None), _emails.c.claimed_at < func.now() - CLAIM_LEASE),
    )
    .values(claimed_at=func.now())
    .returning(_emails.c.id)
)
_RELEASE_CLAIM = (
    update(_emails).where(_this_email, _emails.c.status == "sending").values(claimed_at=None)
)
_MARK_SENT = (
    update(_emails)
    .where(_this_email, _emails.c.status != "sent")
    .values(status="sent", sent_at=func.now())
    .returning(_emails.c.id)
)


def compose(
    order: Order,
    customer: User,
    kind: EmailKind,
    key: str,
    refund: Refund | None = None,
    shipments: Sequence[Shipment] = (),
) -> EmailMessage:
    """The e-mail of ``kind`` for ``order`` (``key``: its claim, ``claim_key``); the refunded
    one names ``refund``, the shipped one each of ``shipments`` (the order's, not cancelled)
    with its carrier, tracking number and tracking link."""
    greeting = f"Hello {customer.name or customer.email},"
    lines = "\n".join(f"  {line.quantity} x {line.name} ({line.sku})" for line in order.lines)
    amount = refund.money.format() if refund is not None else ""
    body = {
        EmailKind.CONFIRMATION: f"thank you! We received your payment of "
        f"{order.total.format()}. Invoice {order.invoice_number}.",
        EmailKind.SHIPPED: "your order has shipped." + _parcels(shipments),
        EmailKind.DELIVERED: "your order was delivered. Enjoy!",
        EmailKind.CANCELLED: "your order was cancelled. Any payment is refunded in full.",
        EmailKind.FAILED: f"we could not complete your order ({order.failure_reason}). "
        "You have not been charged.",
        EmailKind.REFUNDED: f"we refunded {amount} to the card that paid your order"
        + (f" ({refund.reason})" if refund is not None and refund.reason else "")
        + ". It may take a few days to appear on your statement.",
        EmailKind.UPDATED: f"your order was changed as you asked. It now comes to "
        f"{order.total.format()}; any difference you paid is refunded to your card.",
    }[kind]
    return EmailMessage(
        to=customer.email,
        subject=_SUBJECTS[kind].format(id=order.id, amount=amount),
        text=f"{greeting}\n\n{body}\n\nOrder {order.id}:\n{lines}\n",
        message_key=email_message_key(order.id, key),
    )


def _not_sent(order_id: Any, key: Any) -> ColumnElement[bool]:
    return ~exists().where(
        and_(
            EmailRecord.order_id == order_id, EmailRecord.kind == key, EmailRecord.status == "sent"
        )
    )


_OWED_REFUND_EMAILS = (
    select(Refund.order_id, Refund.id)
    .where(
        Refund.status == RefundStatus.SUCCEEDED,
        Refund.updated_at < bindparam("cutoff"),
        Refund.updated_at > bindparam("since"),
        _not_sent(Refund.order_id, literal(f"{EmailKind.REFUNDED.value}:") + Refund.id),
    )
    .order_by(Refund.updated_at)
    .limit(bindparam("limit"))
)
_OWED_CHANGE_EMAILS = (
    select(OrderEvent.order_id, OrderEvent.id)
    .where(
        OrderEvent.type == OrderEventType.ORDER_UPDATED,
        OrderEvent.data.op("?")(CHANGE_BY_REQUEST),  # PATCH's, not a refund's or a parcel's
        OrderEvent.created_at < bindparam("cutoff"),
        OrderEvent.created_at > bindparam("since"),
        _not_sent(OrderEvent.order_id, literal(f"{EmailKind.UPDATED.value}:") + OrderEvent.id),
    )
    .order_by(OrderEvent.created_at)
    .limit(bindparam("limit"))
)


def _parcels(shipments: Sequence[Shipment]) -> str:
    """One paragraph per parcel: carrier, tracking number, and where to follow it: the
    carrier's tracking page when the shipment has one, else the shipment on this API
    (``GET /api/v1/shipments/{id}``, which the customer may read), relative like a label's
    ``label_url``."""
    parts = []
    for number, shipment in enumerate(shipments, start=1):
        units = sum(line.quantity for line in shipment.lines)
        link = shipment.tracking_url or f"/api/v1/shipments/{shipment.id}"
        parts.append(
            f"\n\nParcel {number} of {len(shipments)} ({units} unit(s)), shipment {shipment.id}"
            f"\n  Carrier: {shipment.carrier or 'not given'}"
            f"\n  Tracking number: {shipment.tracking_number or 'not given'}"
            f"\n  Track it: {link}"
        )
    return "".join(parts)
