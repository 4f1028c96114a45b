"""Credit notes: the invoice never changes; money given back after it was issued is
documented by a credit note (``CN-YYYY-NNNNNN``, gapless per year like invoices), one per
refund, for the refund's amount.

A credit note is issued when its refund **succeeds**, not when it is asked for: it states
that money was credited, and a refund the provider refuses credits nothing (the money stays
refundable; the next refund gets its own credit note). Any refund counts: a manual partial
refund, the refund of an order change, of a return, of a cancellation. A refund that
succeeds before the order's invoice exists gets its credit note once the invoice is issued
(``generate_invoice`` schedules it), and the sweeper schedules any that are owed and lost.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from orderflow.errors import NotFound
from orderflow.event_types import OrderEventType
from orderflow.invoices.credit_notes import CreditNoteRepository, credit_note_number
from orderflow.invoices.document import CreditNoteDocument
from orderflow.invoices.pdf import render_credit_note_pdf
from orderflow.models import CreditNote, Order, Refund
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.orders.service import Viewer, get_order
from orderflow.statuses import RefundStatus
from orderflow.steps import EmailKind, Step, schedule


def after_refund_succeeded(orders: OrderRepository, order: Order, refund: Refund) -> None:
    """What follows a refund that succeeded (in the transaction that records it): its credit
    note when the order has an invoice, and the customer's e-mail."""
    if order.invoice_number is not None:
        schedule(orders.session, Step.ISSUE_CREDIT_NOTE, order.id, refund_id=refund.id)
    schedule(
        orders.session,
        Step.SEND_EMAIL,
        order.id,
        kind=EmailKind.REFUNDED.value,
        refund_id=refund.id,
    )


def schedule_owed_credit_notes(orders: OrderRepository, order: Order) -> None:
    """The order was just invoiced: a credit note for each refund that already succeeded."""
    for refund in orders.refunds_of(order.id):
        if refund.status == RefundStatus.SUCCEEDED:
            schedule(orders.session, Step.ISSUE_CREDIT_NOTE, order.id, refund_id=refund.id)


def issue_credit_note(session: Session, order_id: str, refund_id: str) -> CreditNote | None:
    """The credit note of a succeeded refund of an invoiced order. Safe to repeat: the
    order's row lock queues concurrent runs, and the second finds the first's note."""
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    refund = orders.refund(refund_id)
    if refund is None or refund.order_id != order_id or refund.status != RefundStatus.SUCCEEDED:
        return None  # a refund that failed credits nothing
    if order.invoice_number is None:
        return None  # owed once the invoice is issued (generate_invoice schedules it)
    notes = CreditNoteRepository(session)
    existing = notes.of_refund(refund_id)
    if existing is not None:
        return existing
    issued_at = datetime.now(UTC)
    year = issued_at.year
    sequence = notes.next_number(year)
    number = credit_note_number(year, sequence)
    document = CreditNoteDocument.from_refund(order, refund, number, issued_at)
    notes.add(
        {
            "refund_id": refund.id,
            "order_id": order.id,
            "number": number,
            "year": year,
            "sequence": sequence,
            "amount": refund.amount,
            "currency": refund.currency,
            "invoice_number": order.invoice_number,
            "pdf": render_credit_note_pdf(document),
            "issued_at": issued_at,
        }
    )
    orders.record_event(
        order.id,
        OrderEventType.CREDIT_NOTE_ISSUED,
        SYSTEM_ACTOR,
        {"number": number, "refund_id": refund.id, "amount": refund.amount,
         "currency": refund.currency, "invoice_number": order.invoice_number},
    )  # fmt: skip
    return notes.of_refund(refund_id)


def list_credit_notes(session: Session, viewer: Viewer, order_id: str) -> list[CreditNote]:
    """The order's credit notes, oldest first: its owner or an admin."""
    get_order(session, order_id, viewer)
    return CreditNoteRepository(session).of_order(order_id)


def credit_note(session: Session, viewer: Viewer, order_id: str, number: str) -> CreditNote:
    """One credit note of the order by its number; 404 for anyone else's order."""
    get_order(session, order_id, viewer)
    found = CreditNoteRepository(session).by_number(order_id, number)
    if found is None:
        raise NotFound(f"order {order_id} has no credit note {number}", order_id=order_id)
    return found
