"""The transactional outbox: work is written in the same transaction as the change that
caused it, and a relay moves it onto the broker after commit. No dual writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from orderflow.logging import current_request_id
from orderflow.models import OutboxMessage

#: Channel the relay LISTENs on. A trigger on the outbox table (migration 0005) notifies it
#: on every insert; PostgreSQL delivers the notification only when the transaction commits.
NOTIFY_CHANNEL = "orderflow_outbox"
#: Payload key carrying the id of the HTTP request that caused the work; the relay moves it
#: into the task's headers, so it never reaches the task as an argument.
REQUEST_ID_KEY = "_request_id"


def enqueue(session: Session, topic: str, order_id: str | None, payload: dict[str, Any]) -> None:
    request_id = current_request_id()
    if request_id is not None:
        payload = {**payload, REQUEST_ID_KEY: request_id}
    session.add(OutboxMessage(topic=topic, order_id=order_id, payload=payload))


def task_call(message: OutboxMessage) -> tuple[dict[str, Any], dict[str, str]]:
    """The task's keyword arguments and the headers to publish it with."""
    kwargs = dict(message.payload)
    request_id = kwargs.pop(REQUEST_ID_KEY, None)
    return kwargs, ({"request_id": str(request_id)} if request_id else {})


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
