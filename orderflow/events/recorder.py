"""Writing business events: in the transaction of the change, when it commits.

``note`` is called by the one hook point of the order timeline (``orders.events.new_event``)
for every timeline entry that is a business fact, so the timeline and the feed cannot
disagree: each event has the id of its timeline entry. The events of a transaction are
written just before it commits (``before_commit``), in one statement that also counts each
subject's sequence (``event_subjects``, upserted: its row lock makes the count gapless) and,
once webhooks exist, creates their deliveries. A rolled-back transaction writes none.

Why at commit and not at once: an event's ``data`` is its subject as ``GET`` shows it, and
``GET`` only ever shows committed states. Written at commit, ``payment.succeeded`` shows the
order paid and confirmed, as every reader will see it, not the half-updated row of the
moment the timeline entry was appended. The cost is one statement to read the subjects
(``snapshots.read_orders``) and one to write the events, per transaction that has any; the
intake, which knows the order it just wrote, skips the read (``know_order``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, event, text
from sqlalchemy.orm import Session

from orderflow.events import models as _tables  # noqa: F401  (the tables of the events)
from orderflow.events.snapshots import (
    read_orders,
    read_returns,
    read_shipments,
    render_order_object,
)
from orderflow.events.types import Fact, SubjectType
from orderflow.models import Order

_PENDING = "orderflow.events.pending"
_KNOWN = "orderflow.events.known_subjects"


@dataclass(frozen=True)
class _Pending:
    event_id: str
    fact: Fact


def note(session: Session, event_id: str, fact: Fact) -> None:
    """Write ``fact`` as event ``event_id`` when the session's transaction commits."""
    session.info.setdefault(_PENDING, []).append(_Pending(event_id, fact))


def has_pending(session: Session, subject_type: SubjectType, subject_id: str) -> bool:
    """Whether the session's transaction has noted an event about this subject already."""
    return any(
        p.fact.subject_type is subject_type and p.fact.subject_id == subject_id
        for p in session.info.get(_PENDING, ())
    )


def know_order(session: Session, order: Order) -> None:
    """The order as it will be at commit, so its events need not read it back. For the
    intake only: nothing changes the order it placed before the commit."""
    session.info.setdefault(_KNOWN, {})[order.id] = render_order_object(order)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    write_pending(session)


def write_pending(session: Session) -> None:
    """Write the events noted so far now (the commit writes those noted later)."""
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    known: dict[str, dict[str, Any]] = session.info.pop(_KNOWN, {})
    if not pending:
        return
    session.flush()  # the subjects as they will commit
    order_ids = sorted(
        {p.fact.subject_id for p in pending if p.fact.subject_type is SubjectType.ORDER}
        - known.keys()
    )
    shipment_ids = sorted(
        {p.fact.subject_id for p in pending if p.fact.subject_type is SubjectType.SHIPMENT}
    )
    return_ids = sorted(
        {p.fact.subject_id for p in pending if p.fact.subject_type is SubjectType.RETURN}
    )
    snapshots = {
        **known,
        **(read_orders(session, order_ids) if order_ids else {}),
        **(read_shipments(session, shipment_ids) if shipment_ids else {}),
        **(read_returns(session, return_ids) if return_ids else {}),
    }
    session.execute(_WRITE_EVENTS, {"events": json.dumps(_rows(pending, snapshots))})


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_KNOWN, None)


def _rows(pending: list[_Pending], snapshots: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per event, subjects in a fixed order (their counters are locked in it), each
    with its place among its subject's events of this transaction."""
    totals: dict[tuple[str, str], int] = {}
    rows: list[dict[str, Any]] = []
    for item in pending:
        fact = item.fact
        subject = (fact.subject_type.value, fact.subject_id)
        totals[subject] = totals.get(subject, 0) + 1
        data = fact.data if fact.data is not None else snapshots[fact.subject_id]
        rows.append(
            {
                "id": item.event_id,
                "type": fact.type.value,
                "subject_type": subject[0],
                "subject_id": subject[1],
                "ordinal": totals[subject],
                "data": data,
            }
        )
    for row in rows:
        row["total"] = totals[(str(row["subject_type"]), str(row["subject_id"]))]
    return sorted(rows, key=lambda row: (row["subject_type"], row["subject_id"], row["ordinal"]))


#: The events of one transaction, their subjects' sequence numbers and a webhook delivery for
#: each endpoint subscribed to each event (enabled ones only): one statement, one round
#: trip. A new delivery wakes the webhooks dispatchers when the transaction commits (a
#: trigger, migration 0015); they claim it from the table.
_WRITE_EVENTS = text(
    """
    WITH batch AS (
        SELECT * FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS b(
            id text, type text, subject_type text, subject_id text, ordinal int,
            total int, data jsonb)
    ), counted AS (
        INSERT INTO event_subjects AS s (subject_type, subject_id, last_sequence)
        SELECT DISTINCT subject_type, subject_id, total FROM batch
        ORDER BY subject_type, subject_id
        ON CONFLICT (subject_type, subject_id)
        DO UPDATE SET last_sequence = s.last_sequence + EXCLUDED.last_sequence
        RETURNING subject_type, subject_id, last_sequence
    ), inserted AS (
        INSERT INTO events (id, type, subject_type, subject_id, sequence, data)
        SELECT b.id, b.type, b.subject_type, b.subject_id,
               c.last_sequence - b.total + b.ordinal, b.data
        FROM batch b JOIN counted c USING (subject_type, subject_id)
        ORDER BY b.subject_type, b.subject_id, b.ordinal
        RETURNING id, type, subject_type, subject_id, sequence
    )
    INSERT INTO webhook_deliveries (endpoint_id, event_id, subject_type, subject_id, sequence)
    SELECT e.id, i.id, i.subject_type, i.subject_id, i.sequence
    FROM inserted i JOIN webhook_endpoints e
      ON e.status = 'enabled' AND i.type LIKE ANY (e.type_likes)
    """
).bindparams(bindparam("events"))
