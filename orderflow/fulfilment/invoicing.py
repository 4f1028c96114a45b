"""Issuing the invoice of a confirmed order: a gapless number per year, a PDF that is stored
once and never changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from orderflow.event_types import OrderEventType
from orderflow.fulfilment.crediting import schedule_owed_credit_notes
from orderflow.invoices.document import InvoiceDocument
from orderflow.invoices.pdf import render_pdf
from orderflow.models import Invoice, InvoiceCounter, Order, table_of
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.statuses import OrderStatus
from orderflow.steps import EmailKind, Step, schedule

#: Orders that were paid and are still going to the customer.
INVOICED_STATUSES = (OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def generate_invoice(session: Session, order_id: str) -> None:
    """Issue the invoice, then schedule the confirmation e-mail. Safe to repeat."""
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    # The order's invoice number is written with its invoice (the audit checks they agree).
    if order.status not in INVOICED_STATUSES or order.invoice_number is not None:
        return
    issued_at = datetime.now(UTC)
    year, sequence = issued_at.year, _next_number(session, issued_at.year)
    number = f"INV-{year}-{sequence:06d}"
    pdf = render_pdf(InvoiceDocument.from_order(order, number, issued_at))
    session.execute(
        _INSERT_INVOICE,
        {
            "order_id": order_id,
            "number": number,
            "year": year,
            "sequence": sequence,
            "pdf": pdf,
            "issued_at": issued_at,
        },
    )
    orders.update(order, invoice_number=number)
    orders.record_event(
        order_id, OrderEventType.INVOICE_GENERATED, SYSTEM_ACTOR, {"number": number}
    )
    schedule(session, Step.SEND_EMAIL, order_id, kind=EmailKind.CONFIRMATION.value)
    if order.refunded_amount > 0:  # refunds that succeeded before the invoice: credit them
        schedule_owed_credit_notes(orders, order)


def invoice_pdf(session: Session, order_id: str) -> bytes | None:
    return session.scalar(select(Invoice.pdf).where(Invoice.order_id == order_id))


def why_no_invoice(order: Order) -> str:
    """What to tell whoever asks for the invoice of an order that has none: whether it is
    coming, and when, or that it never will."""
    if order.status in INVOICED_STATUSES:
        return f"order {order.id} is paid; its invoice is being issued: retry in a moment"
    if order.status == OrderStatus.PENDING:
        return f"order {order.id} has no invoice yet: it is issued once the order is paid"
    if order.status == OrderStatus.FAILED:
        reason = order.failure_reason or "not completed"
        return f"order {order.id} failed ({reason}): it has no invoice and will not get one"
    return (
        f"order {order.id} was {order.status} before an invoice was issued: it has none and "
        "will not get one"
    )


def _next_number(session: Session, year: int) -> int:
    """Take the year's next number. The counter row stays locked until the transaction ends,
    so a rolled-back invoice gives its number back and the sequence has no gaps."""
    return int(session.execute(_TAKE_NUMBER, {"year": year, "last_number": 1}).scalar_one())


_counters = table_of(InvoiceCounter)
# Built once (compiled and cache-keyed once): every confirmed order runs them.
_TAKE_NUMBER = (
    insert(_counters)
    .on_conflict_do_update(
        index_elements=[_counters.c.year], set_={"last_number": _counters.c.last_number + 1}
    )
    .returning(_counters.c.last_number)
)
_INSERT_INVOICE = insert(table_of(Invoice))
