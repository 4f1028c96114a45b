"""Every statement on returns and their lines, in the caller's transaction (never commits).
Whoever changes a return locks its order first (``OrderRepository.lock_for_update``), then
the return, always in that order: every writer of an order's returns waits for that one row
lock and then reads what the others committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from orderflow.errors import NotFound
from orderflow.models import table_of
from orderflow.pagination import Page, paginate
from orderflow.returns.models import Return, ReturnLine
from orderflow.returns.state import HOLDING, RECEIVED
from orderflow.statuses import ReturnStatus


class ReturnRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- reading ----------------------------------------------------------------------------

    def get(self, return_id: str) -> Return | None:
        return self.session.get(Return, return_id)

    def require(self, return_id: str) -> Return:
        found = self.get(return_id)
        if found is None:
            raise NotFound(f"return {return_id} does not exist", return_id=return_id)
        return found

    def lock(self, return_id: str) -> Return:
        """The return row, locked and freshly read (its order's lock taken first)."""
        found = self.session.scalar(_LOCK_RETURN, {"return_id": return_id})
        if found is None:
            raise NotFound(f"return {return_id} does not exist", return_id=return_id)
        self.session.expire(found, ["lines"])
        return found

    def by_refund(self, refund_id: str) -> Return | None:
        """The return whose receipt made ``refund_id``, locked (its order's lock held)."""
        return self.session.scalar(_BY_REFUND, {"refund_id": refund_id})

    def page(self, order_id: str, limit: int, offset: int) -> Page[Return]:
        query = select(Return).where(Return.order_id == order_id).order_by(Return.id)
        return paginate(self.session, query, limit, offset)

    def returned_by_line(self, order_id: str) -> dict[int, int]:
        """Units of each order line that count as returned (``state.HOLDING``): asked for
        until received, received from then on. Read under the order's lock."""
        rows = self.session.execute(_RETURNED_BY_LINE, {"order_id": order_id}).all()
        return {int(row[0]): int(row[1]) for row in rows}

    # -- writing ----------------------------------------------------------------------------

    def add(self, return_: Return, lines: Sequence[ReturnLine]) -> Return:
        return_.lines = list(lines)
        self.session.add(return_)
        self.session.flush()
        return return_

    def move_status(self, return_: Return, target: ReturnStatus, **changes: Any) -> bool:
        """Compare-and-set: move the return to ``target`` (with further column ``changes``)
        only if its row still has the status the object has."""
        written = self.session.execute(
            update(_returns)
            .where(_returns.c.id == return_.id, _returns.c.status == return_.status.value)
            .values(status=target.value, updated_at=func.now(), **changes)
            .returning(_returns.c.updated_at)
        ).first()
        if written is None:
            return False
        for name, value in {**changes, "status": target, "updated_at": written[0]}.items():
            set_committed_value(return_, name, value)
        return True

    def record_receipt(self, line: ReturnLine, received_quantity: int, restock: bool) -> None:
        self.session.execute(
            update(_lines)
            .where(_lines.c.id == line.id)
            .values(received_quantity=received_quantity, restock=restock)
        )
        set_committed_value(line, "received_quantity", received_quantity)
        set_committed_value(line, "restock", restock)

    def mark_restocked(self, return_id: str) -> list[tuple[str, int]]:
        """Stamp the lines of the return to put back on the shelf, once: (product id,
        units) of those stamped now, none if they were before. The stock ledger's trigger
        records each line stamped (``stock_ledger.return_line_id``)."""
        rows = self.session.execute(_MARK_RESTOCKED, {"return_id": return_id}).all()
        return sorted((str(row[0]), int(row[1])) for row in rows)


_returns, _lines = table_of(Return), table_of(ReturnLine)

_LOCK_RETURN = (
    select(Return)
    .where(Return.id == bindparam("return_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_BY_REFUND = (
    select(Return)
    .where(Return.refund_id == bindparam("refund_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_HOLDING = ", ".join(f"'{status.value}'" for status in sorted(HOLDING))
_RECEIVED = ", ".join(f"'{status.value}'" for status in sorted(RECEIVED))
_RETURNED_BY_LINE = text(
    f"""
    SELECT l.order_line_id,
           sum(CASE WHEN r.status IN ({_RECEIVED}) THEN coalesce(l.received_quantity, 0)
                    ELSE l.quantity END)
    FROM return_lines l JOIN returns r ON r.id = l.return_id
    WHERE r.order_id = :order_id AND r.status IN ({_HOLDING})
    GROUP BY l.order_line_id
    """
)
_MARK_RESTOCKED = text(
    """
    UPDATE return_lines SET restocked_at = now()
    WHERE return_id = :return_id AND restock AND received_quantity > 0
      AND restocked_at IS NULL
    RETURNING product_id, received_quantity
    """
)
