"""The append-only order timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, func, insert, select
from sqlalchemy.orm import Session

from orderflow import metrics
from orderflow.ids import new_id
from orderflow.models import OrderEvent, parameters_for, table_of
from orderflow.pagination import Page, paginate

SYSTEM_ACTOR = "system"


def insert_event(prefix: str = "") -> Insert:
    """The INSERT of a ``new_event`` from parameters named ``{prefix}{column}``. Dated with
    the time of the change, not of the transaction's start (``now()``): a transaction that
    waited for the order's lock must not date its event before the one it waited on."""
    columns = parameters_for(_events, _EVENT_COLUMNS, prefix)
    return insert(_events).values(**columns, created_at=func.clock_timestamp())


_events = table_of(OrderEvent)
_EVENT_COLUMNS = ("id", "order_id", "type", "actor", "data")
#: Built once: a statement object is compiled and keyed for SQLAlchemy's cache only once, and
#: every order writes several events.
_INSERT_EVENT = insert_event()


def record_event(
    session: Session, order_id: str, type_: str, actor: str, data: dict[str, Any] | None = None
) -> None:
    """Append an event now (one INSERT, no object to flush later)."""
    session.execute(_INSERT_EVENT, new_event(session, order_id, type_, actor, data))


def new_event(
    session: Session, order_id: str, type_: str, actor: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The row of an event written in the session's transaction, by ``record_event`` or by
    ``insert_event`` within a larger statement; counted in the metrics at commit."""
    data = data or {}
    metrics.note_order_event(session, type_, data)
    return {"id": new_id("evt"), "order_id": order_id, "type": type_, "actor": actor, "data": data}


def list_events(session: Session, order_id: str, limit: int, offset: int) -> Page[OrderEvent]:
    query = (
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id)
        .order_by(OrderEvent.created_at, OrderEvent.id)
    )
    return paginate(session, query, limit, offset)
