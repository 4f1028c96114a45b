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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import ColumnClause, and_, bindparam, delete, func, insert, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow.errors import BadRequest, IdempotencyKeyInFlight, IdempotencyKeyReused
from orderflow.models import IdempotencyKey, table_of

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    location: str | None = None


@dataclass(frozen=True)
class IdempotentRequest:
    """An ``Idempotency-Key``, scoped to whoever sent it (an admin acting for a customer has
    keys of their own), with the fingerprint of the request it came with."""

    caller_id: str
    key: str
    fingerprint: str
    ttl_hours: int


@dataclass(frozen=True)
class Answer:
    response: StoredResponse
    replayed: bool


def once(
    session: Session, request: IdempotentRequest | None, act: Callable[[], StoredResponse]
) -> Answer:
    """The replay rule: the answer already given to this key, or ``act()``'s, remembered
    in the same transaction as its effect. Without a key, just ``act()``."""
    if request is None:
        return Answer(act(), replayed=False)
    stored = claim(session, request.caller_id, request.key, request.fingerprint, request.ttl_hours)
    if stored is not None:
        return Answer(stored, replayed=True)
    response = act()
    remember(session, request.caller_id, request.key, request.fingerprint, response)
    return Answer(response, replayed=False)


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
    """Lock the key for this transaction and return the stored answer if there is one, in
    one statement. Its read sees the snapshot taken as the statement began: a request under
    the same key that commits in the instant between that and the lock is missed, and its
    stored answer then refuses this one's in ``remember`` (409, as for one still running)."""
    found = session.execute(
        _CLAIM, {"scope": f"idempotency:{user_id}:{key}", "user_id": user_id, "key": key}
    ).one()
    if not found.locked:
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still in progress")
    if found.id is None:
        return None
    if found.created_at < datetime.now(UTC) - timedelta(hours=ttl_hours):
        session.execute(_DELETE_KEY, {"id": found.id})
        return None
    if found.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body; use a new key"
        )
    return StoredResponse(found.response_status, found.response_body, found.response_location)


def remember(
    session: Session, user_id: str, key: str, request_fingerprint: str, response: StoredResponse
) -> None:
    try:
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
    except IntegrityError as error:
        if isinstance(error.orig, UniqueViolation) and (
            error.orig.diag.constraint_name == _CALLER_KEY_UNIQUE
        ):
            raise IdempotencyKeyInFlight(
                "a request with this Idempotency-Key has just been answered; retry to get "
                "its answer"
            ) from None
        raise


# Built once (compiled and cache-keyed once): every order placed with a key runs them.
_keys = table_of(IdempotencyKey)
_CALLER_KEY_UNIQUE = "idempotency_keys_caller_key"
_ZERO: ColumnClause[int] = literal_column("0")
#: The lock (a volatile function, run once for the one row) and the key's row if any.
_CLAIM = select(
    func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("scope"), _ZERO)).label(
        "locked"
    ),
    *_keys.c,
).select_from(
    select(_ZERO.label("one"))
    .subquery("one")
    .outerjoin(
        _keys, and_(_keys.c.user_id == bindparam("user_id"), _keys.c.key == bindparam("key"))
    )
)
_DELETE_KEY = delete(_keys).where(_keys.c.id == bindparam("id"))
_INSERT_KEY = insert(_keys)


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


def refund_idempotency_key(order_id: str, refund_id: str) -> str:
    """One provider refund per refund row: the row is written before the call, so a retry
    of the same refund sends the same key and a new refund a new one."""
    return f"orderflow:{order_id}:refund:{refund_id}"


def email_message_key(order_id: str, kind: str) -> str:
    return f"{order_id}:{kind}"


def sms_message_key(order_id: str, kind: str) -> str:
    return f"{order_id}:sms:{kind}"


def webhook_notice_message_key(endpoint_id: str, disablement: int, recipient: str) -> str:
    """One e-mail per admin per disablement of an endpoint (the address as a digest: keys
    are at most 255 characters, addresses up to 320)."""
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:16]
    return f"{endpoint_id}:disabled:{disablement}:{digest}"
