"""The append-only order timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from orderflow import metrics
from orderflow.ids import new_id
from orderflow.models import OrderEvent
from orderflow.pagination import Page, paginate

SYSTEM_ACTOR = "system"


def record_event(
    session: Session, order_id: str, type_: str, actor: str, data: dict[str, Any] | None = None
) -> None:
    """Append an event now (one INSERT, no object to flush later)."""
    data = data or {}
    session.execute(
        insert(OrderEvent).values(
            id=new_id("evt"),
            order_id=order_id,
            type=type_,
            actor=actor,
            data=data,
            # The time of the change, not of the transaction's start (``now()``): a transaction
            # that waited for the order's lock must not date its event before the one it
            # waited on.
            created_at=func.clock_timestamp(),
        )
    )
    metrics.note_order_event(session, type_, data)


def list_events(session: Session, order_id: str, limit: int, offset: int) -> Page[OrderEvent]:
    query = (
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id)
        .order_by(OrderEvent.created_at, OrderEvent.id)
    )
    return paginate(session, query, limit, offset)
