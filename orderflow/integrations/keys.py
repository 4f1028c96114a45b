"""Integration keys: opaque bearer secrets for machines, scoped and revocable.

A secret is ``ofk_`` followed by 43 URL-safe characters: 256 random bits from ``secrets``.
Only its SHA-256 is stored. A fast unkeyed hash is enough here, and a slow one (argon2,
bcrypt) would be wrong: those exist to make guessing *low-entropy* passwords expensive, and
nobody can guess 256 random bits whatever the hash costs, while every request authenticated
with a key pays the hash. A keyed hash (HMAC with a server-side pepper) would only add a
second secret to keep and rotate, protecting nothing a 256-bit secret does not already
protect. The hash is looked up through a unique index, so the comparison is the database's
equality on a digest, not a timing oracle on the secret itself.

A key acts as an admin within its scopes; which route needs which scope is the API's table
(``api/scopes.py``). No key can manage keys: only a logged-in admin can.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from orderflow.errors import NotAuthenticated, NotFound
from orderflow.ids import new_id
from orderflow.integrations.models import ApiKey
from orderflow.pagination import Page, paginate

SECRET_PREFIX = "ofk_"
#: How often ``last_used_at`` is written at most: a busy key does not write on every request.
LAST_USED_RESOLUTION_SECONDS = 60


class Scope(StrEnum):
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    PRODUCTS_WRITE = "products:write"
    EVENTS_READ = "events:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    #: Shown once, in the answer to its creation; never stored.
    secret: str


@dataclass(frozen=True)
class KeyCaller:
    """Who sent a valid, unrevoked key."""

    key_id: str
    scopes: frozenset[Scope]
    #: The admin who created the key; the key acts as an admin within its scopes.
    created_by: str


def is_key(token: str) -> bool:
    return token.startswith(SECRET_PREFIX)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_key(session: Session, name: str, scopes: list[Scope], created_by: str) -> CreatedKey:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        name=name,
        prefix=secret[:12],
        secret_hash=hash_secret(secret),
        scopes=sorted({scope.value for scope in scopes}),
        created_by=created_by,
    )
    session.add(key)
    session.flush()
    session.refresh(key)
    return CreatedKey(key, secret)


def list_keys(session: Session, limit: int, offset: int) -> Page[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    return paginate(session, query, limit, offset)


def revoke_key(session: Session, key_id: str) -> None:
    """Refused from the next request on. Revoking a revoked key changes nothing."""
    found = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
        .returning(ApiKey.id)
    ).first()
    if found is None:
        raise NotFound(f"integration key {key_id} does not exist")


def authenticate_key(session: Session, secret: str) -> KeyCaller:
    """The key behind ``secret`` if it exists and is not revoked; notes its use (at most
    once a minute, and never waiting for a lock: ``SKIP LOCKED``) in the same statement."""
    row = session.execute(_AUTHENTICATE, {"secret_hash": hash_secret(secret)}).first()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("the integration key is invalid or revoked")
    return KeyCaller(row.id, frozenset(Scope(s) for s in row.scopes), row.created_by)


#: One round trip per key-authenticated request: read the key, and stamp ``last_used_at``
#: when the last stamp is older than ``LAST_USED_RESOLUTION_SECONDS``.
_AUTHENTICATE = text(
    f"""
    WITH found AS (
        SELECT id, scopes, created_by, revoked_at, last_used_at FROM api_keys
        WHERE secret_hash = :secret_hash
    ), touched AS (
        UPDATE api_keys SET last_used_at = now()
        WHERE id = (
            SELECT api_keys.id FROM api_keys JOIN found USING (id)
            WHERE found.revoked_at IS NULL
              AND (found.last_used_at IS NULL
                   OR found.last_used_at < now() - interval '{LAST_USED_RESOLUTION_SECONDS} s')
            FOR UPDATE OF api_keys SKIP LOCKED
        )
    )
    SELECT id, scopes, created_by, revoked_at FROM found
    """
).bindparams(bindparam("secret_hash"))
