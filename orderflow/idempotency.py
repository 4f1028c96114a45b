"""HTTP ``Idempotency-Key`` handling: one home for the replay rule.

A key is scoped to the caller. The first request that carries it takes a transaction-scoped
advisory lock on (caller, key); a second request arriving while the first holds the lock gets
409. The first answer is stored in the same transaction as the effect it describes, so a
retry after a crash between commit and response replays it instead of acting twice. Only
successful answers are stored: a refused request changed nothing and may be tried again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from orderflow.errors import BadRequest, IdempotencyKeyInFlight, IdempotencyKeyReused
from orderflow.models import IdempotencyKey, table_of

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    location: str | None = None


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            errors=[{"field": "Idempotency-Key", "message": "invalid length or characters"}],
        )


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    session: Session, user_id: str, key: str, request_fingerprint: str, ttl_hours: int
) -> StoredResponse | None:
    """Lock the key for this transaction; return the stored answer if there is one."""
    locked = session.scalar(_TRY_LOCK, {"scope": f"idempotency:{user_id}:{key}"})
    if not locked:
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still in progress")
    stored = session.scalar(_SELECT_KEY, {"user_id": user_id, "key": key})
    if stored is None:
        return None
    if stored.created_at < datetime.now(UTC) - timedelta(hours=ttl_hours):
        session.delete(stored)
        session.flush()
        return None
    if stored.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body; use a new key"
        )
    return StoredResponse(stored.response_status, stored.response_body, stored.response_location)


def remember(
    session: Session, user_id: str, key: str, request_fingerprint: str, response: StoredResponse
) -> None:
    session.execute(
        _INSERT_KEY,
        {
            "user_id": user_id,
            "key": key,
            "request_fingerprint": request_fingerprint,
            "response_status": response.status,
            "response_body": response.body,
            "response_location": response.location,
        },
    )


# Built once (compiled and cache-keyed once): every order placed with a key runs all three.
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended(:scope, 0))")
_SELECT_KEY = select(IdempotencyKey).where(
    IdempotencyKey.user_id == bindparam("user_id"), IdempotencyKey.key == bindparam("key")
)
_INSERT_KEY = insert(table_of(IdempotencyKey))


def purge_expired(session: Session, ttl_hours: int) -> int:
    cutoff = datetime.now(UTC) - timedelta(hours=ttl_hours)
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# --- keys for calls to the outside world ---------------------------------------------------
# Derived from domain ids, never random: every retry, redelivery or re-drive of the same step
# sends the same key, so the provider answers the first result again instead of acting twice.


def charge_idempotency_key(order_id: str, attempt: int) -> str:
    """One PaymentIntent per order and attempt. Retries reuse the attempt; only an operator's
    deliberate re-drive after investigation starts a new one."""
    return f"orderflow:{order_id}:charge:{attempt}"


def refund_idempotency_key(order_id: str) -> str:
    """An order is refunded at most once, in full."""
    return f"orderflow:{order_id}:refund"


def email_message_key(order_id: str, kind: str) -> str:
    return f"{order_id}:{kind}"
