"""The transactional outbox: work is written in the same transaction as the change that
caused it, and a relay moves it onto the broker after commit. No dual writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from orderflow.models import OutboxMessage

#: Channel the relay LISTENs on; NOTIFY is delivered only when the transaction commits.
NOTIFY_CHANNEL = "orderflow_outbox"


def enqueue(session: Session, topic: str, order_id: str | None, **payload: Any) -> None:
    session.add(OutboxMessage(topic=topic, order_id=order_id, payload=payload))
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
