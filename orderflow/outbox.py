"""The transactional outbox: work is written in the same transaction as the change that
caused it, and a relay moves it onto the broker after commit. No dual writes.

This module is the outbox's repository: every statement on the ``outbox`` table is here."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Insert, bindparam, delete, event, func, insert, select, text, update
from sqlalchemy.orm import Session

from orderflow.logging import current_request_id
from orderflow.models import OutboxMessage, parameters_for, table_of

#: Channel the relay LISTENs on. A trigger on the outbox table (migration 0005) notifies it
#: on every insert; PostgreSQL delivers the notification only when the transaction commits.
NOTIFY_CHANNEL = "orderflow_outbox"
#: Payload key carrying the id of the HTTP request that caused the work; the relay moves it
#: into the task's headers, so it never reaches the task as an argument.
REQUEST_ID_KEY = "_request_id"


@dataclass
class Takeover:
    """Messages of ``topics`` that the current process will run itself, once the transaction
    that wrote them has committed: a worker going on with an order's next step without a
    round trip through the relay and the broker. They are written as already dispatched, so
    the relay leaves them alone; a process that dies before running them loses them the way
    a flushed broker would, and the sweeper schedules the step again."""

    topics: frozenset[str]
    #: (topic, payload) of the taken messages whose transaction committed, in order.
    committed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


_takeover: ContextVar[Takeover | None] = ContextVar("outbox_takeover", default=None)


@contextmanager
def taking_over(topics: Collection[str]) -> Iterator[Takeover]:
    """Within this block, messages of ``topics`` are kept for the caller (see ``Takeover``)."""
    takeover = Takeover(frozenset(topics))
    token = _takeover.set(takeover)
    try:
        yield takeover
    finally:
        _takeover.reset(token)


def enqueue(session: Session, message: dict[str, Any]) -> None:
    """Write a message (a ``new_message`` row) in the session's transaction."""
    statement = _INSERT_MESSAGE
    topic = message["topic"]
    takeover = _takeover.get()
    if takeover is not None and topic in takeover.topics:
        statement = _INSERT_TAKEN_MESSAGE
        session.info.setdefault(_TAKEN, []).append((takeover, topic, message["payload"]))
    session.execute(statement, message)


def new_message(topic: str, order_id: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The row of a message, carrying the id of the request that caused it. Written by
    ``enqueue``, or by ``insert_message`` within a larger statement (never taken over)."""
    request_id = current_request_id()
    if request_id is not None:
        payload = {**payload, REQUEST_ID_KEY: request_id}
    return {"topic": topic, "order_id": order_id, "payload": payload}


def insert_message(prefix: str = "") -> Insert:
    """The INSERT of a ``new_message`` from parameters named ``{prefix}{column}``."""
    return insert(_outbox).values(parameters_for(_outbox, _MESSAGE_COLUMNS, prefix))


# Built once (compiled and cache-keyed once): every order writes several messages.
_outbox = table_of(OutboxMessage)
_MESSAGE_COLUMNS = ("topic", "order_id", "payload")
_INSERT_MESSAGE = insert_message()
_INSERT_TAKEN_MESSAGE = _INSERT_MESSAGE.values(dispatched_at=func.now(), attempts=1)


#: ``Session.info`` key: messages taken over in the session's open transaction.
_TAKEN = "orderflow.outbox.taken"


@event.listens_for(Session, "after_commit")
def _hand_over_taken(session: Session) -> None:
    for takeover, topic, payload in session.info.pop(_TAKEN, ()):
        takeover.committed.append((topic, payload))


@event.listens_for(Session, "after_rollback")
def _forget_taken(session: Session) -> None:
    session.info.pop(_TAKEN, None)


def task_call(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A message's task keyword arguments, and the headers to publish it with."""
    kwargs = dict(payload)
    request_id = kwargs.pop(REQUEST_ID_KEY, None)
    return kwargs, ({"request_id": str(request_id)} if request_id else {})


def take_batch(session: Session, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Up to ``limit`` undispatched messages, oldest first, as (id, topic, payload), marked
    dispatched in the caller's transaction by one statement. Publish them before that
    transaction commits: a relay that dies first leaves them undispatched, to be published
    again (at least once). ``SKIP LOCKED`` hands other relays the next ones."""
    taken = session.execute(_TAKE_BATCH, {"limit": limit})
    return sorted((row.id, row.topic, row.payload) for row in taken)


#: Built once (compiled and cache-keyed once): the relay runs it for every wake-up.
_TAKE_BATCH = (
    update(_outbox)
    .where(
        _outbox.c.id.in_(
            select(_outbox.c.id)
            .where(_outbox.c.dispatched_at.is_(None))
            .order_by(_outbox.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
    )
    .values(dispatched_at=func.now(), attempts=_outbox.c.attempts + 1)
    .returning(_outbox.c.id, _outbox.c.topic, _outbox.c.payload)
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
