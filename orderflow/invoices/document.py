"""The invoice as data, apart from how it is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderflow.models import Order, Refund
from orderflow.money import Money

SELLER = ("orderflow demo shop", "1 Commerce Way", "New York, NY 10001", "US")


@dataclass(frozen=True)
class InvoiceLine:
    sku: str
    name: str
    quantity: int
    unit_price: Money
    subtotal: Money


@dataclass(frozen=True)
class InvoiceDocument:
    number: str
    order_id: str
    issued_at: datetime
    bill_to: tuple[str, ...]
    lines: tuple[InvoiceLine, ...]
    total: Money
    payment_reference: str | None

    @classmethod
    def from_order(cls, order: Order, number: str, issued_at: datetime) -> InvoiceDocument:
        bill_to = _bill_to(order)
        lines = tuple(
            InvoiceLine(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=Money(line.unit_price_amount, order.currency),
                subtotal=Money(line.subtotal_amount, order.currency),
            )
            for line in order.lines
        )
        return cls(
            number=number,
            order_id=order.id,
            issued_at=issued_at,
            bill_to=bill_to,
            lines=lines,
            total=order.total,
            payment_reference=order.payment_intent_id,
        )


@dataclass(frozen=True)
class CreditNoteDocument:
    """A credit note: the invoice ``invoice_number`` reduced by one refund's amount."""

    number: str
    order_id: str
    invoice_number: str
    refund_id: str
    issued_at: datetime
    bill_to: tuple[str, ...]
    reason: str
    amount: Money

    @classmethod
    def from_refund(
        cls, order: Order, refund: Refund, number: str, issued_at: datetime
    ) -> CreditNoteDocument:
        if order.invoice_number is None:
            raise ValueError(f"order {order.id} has no invoice to credit")
        return cls(
            number=number,
            order_id=order.id,
            invoice_number=order.invoice_number,
            refund_id=refund.id,
            issued_at=issued_at,
            bill_to=_bill_to(order),
            reason=refund.reason or "refund",
            amount=refund.money,
        )


def _bill_to(order: Order) -> tuple[str, ...]:
    address = order.shipping_address
    return tuple(
        str(part)
        for part in (
            address.get("name"),
            address.get("line1"),
            address.get("line2"),
            " ".join(str(p) for p in (address.get("postal_code"), address.get("city")) if p),
            " ".join(str(p) for p in (address.get("state"), address.get("country")) if p),
        )
        if part
    )
