"""The event feed: ``GET /events?after=&types=&limit=``, oldest first, with a cursor that
never skips an event.

Ids and positions are given out when a transaction writes its events, but transactions
commit in another order: a reader paging by position alone could pass position 7 while the
transaction holding position 5 is still open, and never see 5. So the feed serves only the
events of transactions older than the oldest transaction still running
(``txid < pg_snapshot_xmin(pg_current_snapshot())``), ordered by (txid, position). Every
transaction that commits later has a txid at least that horizon, so it sorts after every
cursor already given out: a paging reader sees each event exactly once. The price is that an
event appears in the feed only once every transaction older than its own has ended (a
long-running writer holds the feed back, never loses it); the webhooks do not wait for it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.orm import Session

from orderflow.errors import NotFound, Unprocessable
from orderflow.events.models import Event
from orderflow.events.types import check_patterns

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Cursor:
    txid: int
    position: int

    def encode(self) -> str:
        raw = f"{self.txid}:{self.position}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            txid, position = (int(part) for part in raw.split(":"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Unprocessable(
                "after is not a cursor this feed gave out",
                errors=[{"field": "after", "message": "invalid cursor"}],
            ) from None
        if txid < 0 or position < 0:
            raise Unprocessable(
                "after is not a cursor this feed gave out",
                errors=[{"field": "after", "message": "invalid cursor"}],
            )
        return cls(txid, position)


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


def parse_types(types: str | None) -> list[str] | None:
    """``order.*,shipment.updated`` as a list, unknown names refused (422)."""
    if types is None or not types.strip():
        return None
    patterns = [part.strip() for part in types.split(",") if part.strip()]
    try:
        return check_patterns(patterns)
    except ValueError as error:
        raise Unprocessable(
            str(error), errors=[{"field": "types", "message": str(error)}]
        ) from None


def read_page(session: Session, after: str | None, types: list[str] | None, limit: int) -> FeedPage:
    cursor = Cursor.decode(after) if after else Cursor(0, 0)
    likes = None if types is None else [_like(pattern) for pattern in types]
    rows = session.execute(
        _PAGE,
        {"txid": str(cursor.txid), "position": cursor.position, "likes": likes, "n": limit + 1},
    ).mappings()
    found = [dict(row) for row in rows]
    has_more = len(found) > limit
    found = found[:limit]
    if found:
        last = found[-1]
        next_cursor: str | None = Cursor(int(last["txid"]), last["position"]).encode()
    else:
        next_cursor = after
    return FeedPage([_public(row) for row in found], next_cursor, has_more)


def get_event(session: Session, event_id: str) -> dict[str, Any]:
    row = session.execute(_ONE, {"id": event_id}).mappings().first()
    if row is None:
        raise NotFound(f"event {event_id} does not exist", event_id=event_id)
    return _public(dict(row))


def purge_older_than(session: Session, days: int, batch: int) -> int:
    """Delete up to ``batch`` events older than ``days`` (their deliveries go with them)."""
    doomed = (
        select(Event.id)
        .where(Event.created_at < text(f"now() - interval '{int(days)} days'"))
        .order_by(Event.created_at)
        .limit(batch)
        .scalar_subquery()
    )
    result = session.execute(delete(Event).where(Event.id.in_(doomed)))
    return int(getattr(result, "rowcount", 0) or 0)


def public_event(row: dict[str, Any]) -> dict[str, Any]:
    return _public(row)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "created_at": row["created_at"],
        "subject": {"type": row["subject_type"], "id": row["subject_id"]},
        "sequence": row["sequence"],
        "data": row["data"],
    }


def _like(pattern: str) -> str:
    if pattern == "*":
        return "%"
    return pattern[:-1] + "%" if pattern.endswith(".*") else pattern


_COLUMNS = (
    "id, txid::text AS txid, position, type, subject_type, subject_id, sequence, data, created_at"
)
#: Only events of transactions that ended before every one still running (module docstring).
_PAGE = text(
    f"""
    SELECT {_COLUMNS} FROM events
    WHERE (txid, position) > (CAST(:txid AS xid8), :position)
      AND txid < pg_snapshot_xmin(pg_current_snapshot())
      AND (CAST(:likes AS text[]) IS NULL OR type LIKE ANY (CAST(:likes AS text[])))
    ORDER BY txid, position
    LIMIT :n
    """
).bindparams(bindparam("likes"))
_ONE = text(f"SELECT {_COLUMNS} FROM events WHERE id = :id")
