"""The transactional outbox: work is written in the same transaction as the change that
caused it, and a relay moves it onto the broker after commit. No dual writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from orderflow.models import OutboxMessage

#: Channel the relay LISTENs on; NOTIFY is delivered only when the transaction commits.
NOTIFY_CHANNEL = "orderflow_outbox"


def enqueue(session: Session, topic: str, order_id: str | None, payload: dict[str, Any]) -> None:
    session.add(OutboxMessage(topic=topic, order_id=order_id, payload=payload))
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def claim_batch(session: Session, limit: int) -> list[OutboxMessage]:
    """Undispatched messages, oldest first, locked so other relays skip them."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def mark_dispatched(session: Session, ids: list[int]) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(dispatched_at=func.now(), attempts=OutboxMessage.attempts + 1)
    )


def backlog(session: Session) -> tuple[int, float]:
    """How many messages wait, and the age in seconds of the oldest."""
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.dispatched_at.is_(None)
        )
    ).one()
    if oldest is None:
        return 0, 0.0
    age = session.scalar(select(func.extract("epoch", func.now() - oldest)))
    return int(count), float(age or 0)


def purge_dispatched(session: Session, older_than_hours: int) -> int:
    result = session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.dispatched_at
            < func.now() - text(f"interval '{int(older_than_hours)} hours'")
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
