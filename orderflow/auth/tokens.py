"""Access tokens (short-lived JWT, HS256 only) and opaque refresh tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from orderflow.errors import NotAuthenticated

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str


def issue_access_token(secret: str, user_id: str, session_id: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "sid": session_id,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_access_token(secret: str, token: str) -> AccessClaims:
    """Verify signature and expiry. Only HS256 is accepted, so ``alg: none`` is refused."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "sid"]},
        )
    except jwt.PyJWTError as error:
        raise NotAuthenticated("the access token is invalid or expired") from error
    if claims.get("typ") != "access":
        raise NotAuthenticated("the access token is invalid or expired")
    return AccessClaims(user_id=str(claims["sub"]), session_id=str(claims["sid"]))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
