"""Draw an :class:`InvoiceDocument` or a :class:`CreditNoteDocument` as a PDF with reportlab.
Byte-for-byte reproducible."""

from __future__ import annotations

from io import BytesIO

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from orderflow.invoices.document import SELLER, CreditNoteDocument, InvoiceDocument
from orderflow.money import Money

_LEFT = 20 * mm
_RIGHT = A4[0] - 20 * mm
_LINE = 6 * mm
_BOTTOM = 25 * mm


def render_pdf(document: InvoiceDocument) -> bytes:
    buffer = BytesIO()
    # invariant=1 fixes the creation date and document id inside the file.
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(f"Invoice {document.number}")
    canvas.setAuthor(SELLER[0])
    y = _header(canvas, document)
    y = _table_head(canvas, y)
    for line in document.lines:
        if y < _BOTTOM + 2 * _LINE:
            canvas.showPage()
            y = _table_head(canvas, A4[1] - 25 * mm)
        canvas.setFont("Helvetica", 9)
        canvas.drawString(_LEFT, y, line.sku[:20])
        canvas.drawString(_LEFT + 35 * mm, y, line.name[:45])
        canvas.drawRightString(_RIGHT - 60 * mm, y, str(line.quantity))
        canvas.drawRightString(_RIGHT - 30 * mm, y, _amount(line.unit_price))
        canvas.drawRightString(_RIGHT, y, _amount(line.subtotal))
        y -= _LINE
    canvas.line(_LEFT, y + 2 * mm, _RIGHT, y + 2 * mm)
    canvas.setFont("Helvetica-Bold", 11)
    canvas.drawString(_RIGHT - 70 * mm, y - _LINE, "Total")
    canvas.drawRightString(_RIGHT, y - _LINE, _amount(document.total))
    canvas.setFont("Helvetica", 8)
    canvas.drawString(_LEFT, _BOTTOM - 10 * mm, "Paid by card. Thank you for your order.")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def render_credit_note_pdf(document: CreditNoteDocument) -> bytes:
    buffer = BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(f"Credit note {document.number}")
    canvas.setAuthor(SELLER[0])
    details = (
        f"Number: {document.number}",
        f"Date: {document.issued_at:%Y-%m-%d}",
        f"Order: {document.order_id}",
        f"Credits invoice: {document.invoice_number}",
    )
    y = _heading(canvas, "Credit note", details, document.bill_to)
    canvas.setFont("Helvetica-Bold", 9)
    canvas.drawString(_LEFT, y, "Description")
    canvas.drawRightString(_RIGHT, y, "Amount")
    canvas.line(_LEFT, y - 2 * mm, _RIGHT, y - 2 * mm)
    y -= _LINE + 2 * mm
    canvas.setFont("Helvetica", 9)
    canvas.drawString(_LEFT, y, f"Refund {document.refund_id}: {document.reason}"[:95])
    canvas.drawRightString(_RIGHT, y, _amount(document.amount))
    y -= _LINE
    canvas.line(_LEFT, y + 2 * mm, _RIGHT, y + 2 * mm)
    canvas.setFont("Helvetica-Bold", 11)
    canvas.drawString(_RIGHT - 70 * mm, y - _LINE, "Total credited")
    canvas.drawRightString(_RIGHT, y - _LINE, _amount(document.amount))
    canvas.setFont("Helvetica", 8)
    canvas.drawString(_LEFT, _BOTTOM - 10 * mm, "Refunded to the card that paid the order.")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _header(canvas: Canvas, document: InvoiceDocument) -> float:
    details = (
        f"Number: {document.number}",
        f"Date: {document.issued_at:%Y-%m-%d}",
        f"Order: {document.order_id}",
        f"Payment: {document.payment_reference or '-'}",
    )
    return _heading(canvas, "Invoice", details, document.bill_to)


def _heading(
    canvas: Canvas, title: str, details: tuple[str, ...], bill_to: tuple[str, ...]
) -> float:
    top = A4[1] - 25 * mm
    canvas.setFont("Helvetica-Bold", 18)
    canvas.drawString(_LEFT, top, title)
    canvas.setFont("Helvetica", 10)
    for index, text in enumerate(details):
        canvas.drawRightString(_RIGHT, top - index * _LINE, text)
    y = top - 2 * _LINE
    for index, text in enumerate(SELLER):
        canvas.drawString(_LEFT, y - index * 5 * mm, text)
    y -= len(SELLER) * 5 * mm + _LINE
    canvas.setFont("Helvetica-Bold", 10)
    canvas.drawString(_LEFT, y, "Bill to")
    canvas.setFont("Helvetica", 10)
    for index, text in enumerate(bill_to):
        canvas.drawString(_LEFT, y - (index + 1) * 5 * mm, text[:80])
    return y - (len(bill_to) + 2) * 5 * mm


def _table_head(canvas: Canvas, y: float) -> float:
    canvas.setFont("Helvetica-Bold", 9)
    for x, text, right in (
        (_LEFT, "SKU", False),
        (_LEFT + 35 * mm, "Item", False),
        (_RIGHT - 60 * mm, "Qty", True),
        (_RIGHT - 30 * mm, "Unit price", True),
        (_RIGHT, "Amount", True),
    ):
        (canvas.drawRightString if right else canvas.drawString)(x, y, text)
    canvas.line(_LEFT, y - 2 * mm, _RIGHT, y - 2 * mm)
    return y - _LINE - 2 * mm


def _amount(money: Money) -> str:
    """The amount as a person reads it; with its ISO code where the symbol is one the PDF's
    standard font cannot draw (Helvetica covers Windows-1252: $, €, £, ¥ but not ₹ or ₩)."""
    text = money.format()
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return money.format(code=True)
    return text
