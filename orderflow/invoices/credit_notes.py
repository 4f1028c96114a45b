"""Every statement on credit notes and their counter: the credit note aggregate's repository.

Numbers are ``CN-YYYY-NNNNNN``, gapless per year as invoices are: the year's counter row is
taken with the credit note's INSERT in one transaction and stays locked until it ends, so a
rolled-back credit note gives its number back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from orderflow.models import CreditNote, CreditNoteCounter, Invoice, Refund, table_of
from orderflow.statuses import RefundStatus


def credit_note_number(year: int, sequence: int) -> str:
    return f"CN-{year}-{sequence:06d}"


class CreditNoteRepository:
    """Credit notes, in the caller's transaction (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def next_number(self, year: int) -> int:
        """Take the year's next sequence number (its counter row stays locked)."""
        return int(
            self.session.execute(_TAKE_NUMBER, {"year": year, "last_number": 1}).scalar_one()
        )

    def add(self, values: dict[str, Any]) -> None:
        self.session.execute(_INSERT, values)

    def of_refund(self, refund_id: str) -> CreditNote | None:
        return self.session.scalar(select(CreditNote).where(CreditNote.refund_id == refund_id))

    def of_order(self, order_id: str) -> list[CreditNote]:
        """The order's credit notes, oldest first (without their PDFs' bytes loaded twice)."""
        return list(
            self.session.scalars(
                select(CreditNote)
                .where(CreditNote.order_id == order_id)
                .order_by(CreditNote.year, CreditNote.sequence)
            )
        )

    def by_number(self, order_id: str, number: str) -> CreditNote | None:
        return self.session.scalar(
            select(CreditNote).where(CreditNote.order_id == order_id, CreditNote.number == number)
        )

    def owed(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        """(order id, refund id) of refunds that succeeded before ``cutoff`` on an invoiced
        order and have no credit note yet, oldest first: the sweeper schedules them."""
        rows = self.session.execute(_OWED, {"cutoff": cutoff, "limit": limit}).all()
        return [(str(order_id), str(refund_id)) for order_id, refund_id in rows]


_counters = table_of(CreditNoteCounter)
_TAKE_NUMBER = (
    insert(_counters)
    .on_conflict_do_update(
        index_elements=[_counters.c.year], set_={"last_number": _counters.c.last_number + 1}
    )
    .returning(_counters.c.last_number)
)
_INSERT = insert(table_of(CreditNote))
_OWED = (
    select(Refund.order_id, Refund.id)
    .where(
        Refund.status == RefundStatus.SUCCEEDED,
        Refund.updated_at < bindparam("cutoff"),
        exists().where(Invoice.order_id == Refund.order_id),
        ~exists().where(CreditNote.refund_id == Refund.id),
    )
    .order_by(Refund.updated_at)
    .limit(bindparam("limit"))
)
