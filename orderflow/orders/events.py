"""The append-only order timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from orderflow import metrics
from orderflow.ids import new_id
from orderflow.models import OrderEvent, table_of
from orderflow.pagination import Page, paginate

SYSTEM_ACTOR = "system"


#: Built once: a statement object is compiled and keyed for SQLAlchemy's cache only once, and
#: every order writes several events. Dated with the time of the change, not of the
#: transaction's start (``now()``): a transaction that waited for the order's lock must not
#: date its event before the one it waited on.
_INSERT_EVENT = insert(table_of(OrderEvent)).values(created_at=func.clock_timestamp())


def record_event(
    session: Session, order_id: str, type_: str, actor: str, data: dict[str, Any] | None = None
) -> None:
    """Append an event now (one INSERT, no object to flush later)."""
    data = data or {}
    session.execute(
        _INSERT_EVENT,
        {"id": new_id("evt"), "order_id": order_id, "type": type_, "actor": actor, "data": data},
    )
    metrics.note_order_event(session, type_, data)


def list_events(session: Session, order_id: str, limit: int, offset: int) -> Page[OrderEvent]:
    query = (
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id)
        .order_by(OrderEvent.created_at, OrderEvent.id)
    )
    return paginate(session, query, limit, offset)
