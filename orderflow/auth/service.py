"""Use cases of authentication: register, log in, refresh, log out, change password, and
the caller's own profile (name, phone, SMS opt-in)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow.auth import passwords, tokens
from orderflow.auth.phones import normalise_phone
from orderflow.errors import Conflict, NotAuthenticated, RefreshTokenReused, Unprocessable
from orderflow.ids import new_id
from orderflow.models import AuthSession, RefreshToken, User, table_of
from orderflow.settings import Settings

CLIENT = "client"
ADMIN = "admin"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def normalise_email(email: str) -> str:
    return email.strip().lower()


def register_user(
    session: Session,
    email: str,
    password: str,
    name: str | None,
    role: str = CLIENT,
    *,
    phone: str | None = None,
    sms_opt_in: bool = False,
) -> User:
    passwords.check_password_strength(password)
    phone = None if phone is None else normalise_phone(phone)
    _check_opt_in(phone, sms_opt_in)
    user = User(
        id=new_id("usr"),
        email=normalise_email(email),
        name=name,
        password_hash=passwords.hash_password(password),
        role=role,
        phone=phone,
        sms_opt_in=sms_opt_in,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as error:
        raise Conflict("a user with this email already exists") from error
    return user


#: What ``PATCH /auth/me`` may change.
PROFILE_FIELDS = frozenset({"name", "phone", "sms_opt_in"})


def update_profile(session: Session, user: User, changes: Mapping[str, Any]) -> User:
    """Change the given fields of the user's own profile; the others stay as they are.

    ``phone`` is normalised to E.164; ``phone: None`` removes the number and with it the SMS
    opt-in (there is nowhere to text). Opting in needs a phone, given now or on file."""
    unknown = set(changes) - PROFILE_FIELDS
    if unknown:
        raise Unprocessable(
            f"these fields cannot be changed here: {', '.join(sorted(unknown))}",
            errors=[{"field": name, "message": "not a profile field"} for name in sorted(unknown)],
        )
    phone = user.phone
    if "phone" in changes:
        phone = None if changes["phone"] is None else normalise_phone(str(changes["phone"]))
    opt_in = bool(changes.get("sms_opt_in", user.sms_opt_in)) and not (
        "phone" in changes and phone is None and "sms_opt_in" not in changes
    )
    _check_opt_in(phone, opt_in)
    if "name" in changes:
        user.name = changes["name"]
    user.phone, user.sms_opt_in = phone, opt_in
    session.flush()
    return user


def _check_opt_in(phone: str | None, sms_opt_in: bool) -> None:
    if sms_opt_in and phone is None:
        raise Unprocessable(
            "sms_opt_in needs a phone number: give phone as well",
            errors=[{"field": "sms_opt_in", "message": "needs a phone number"}],
        )


def ensure_admin(session: Session, email: str, password: str) -> User:
    """Create the bootstrap admin, or bring its role and password up to date. Idempotent."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        return register_user(session, email, password, name="Administrator", role=ADMIN)
    user.role = ADMIN
    if not passwords.verify_password(user.password_hash, password):
        user.password_hash = passwords.hash_password(password)
    return user


def login(session: Session, settings: Settings, email: str, password: str) -> TokenPair:
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if not passwords.verify_password(user.password_hash if user else None, password):
        raise NotAuthenticated("email or password is wrong")
    assert user is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    auth_session = AuthSession(id=new_id("ses"), user_id=user.id)
    session.add(auth_session)
    session.flush()
    return _issue_pair(session, settings, user.id, auth_session.id)


@dataclass(frozen=True)
class Caller:
    """Who sent a valid access token of a session still open."""

    user_id: str
    role: str


def identify(session: Session, settings: Settings, access_token: str) -> Caller:
    """The caller behind a valid access token whose session is still open: one indexed read
    of plain columns, the cost every authenticated request pays."""
    return caller_of(session, read_claims(settings, access_token))


def read_claims(settings: Settings, access_token: str) -> tokens.AccessClaims:
    """The claims of an access token whose signature and expiry are good; no database read,
    so the session may since have been closed (``caller_of`` checks)."""
    return tokens.read_access_token(settings.jwt_secret.get_secret_value(), access_token)


def caller_of(session: Session, claims: tokens.AccessClaims) -> Caller:
    """The caller behind ``claims`` if their session is still open."""
    row = session.execute(
        _SELECT_CALLER, {"user_id": claims.user_id, "session_id": claims.session_id}
    ).first()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("the access token is invalid or expired")
    return Caller(claims.user_id, row.role)


def authenticate(session: Session, settings: Settings, access_token: str) -> User:
    """The user behind a valid access token whose session is still open."""
    user = session.get(User, identify(session, settings, access_token).user_id)
    if user is None:  # deleted since the token was checked
        raise NotAuthenticated("the access token is invalid or expired")
    return user


_users, _sessions = table_of(User), table_of(AuthSession)
#: Built once (compiled and cache-keyed once): every authenticated request runs it.
_SELECT_CALLER = (
    select(_users.c.role, _sessions.c.revoked_at)
    .join_from(_users, _sessions, _sessions.c.user_id == _users.c.id)
    .where(_users.c.id == bindparam("user_id"), _sessions.c.id == bindparam("session_id"))
)


def refresh(session: Session, settings: Settings, refresh_token: str) -> TokenPair:
    """Rotate a refresh token. Presenting one that was already used revokes the whole session,
    because only a thief or a replay holds an old token once the owner has rotated it."""
    stored = session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == tokens.hash_refresh_token(refresh_token))
        .with_for_update()
    )
    if stored is None:
        raise NotAuthenticated("the refresh token is invalid")
    auth_session = session.get(AuthSession, stored.session_id, with_for_update=True)
    assert auth_session is not None
    now = datetime.now(UTC)
    if stored.used_at is not None:
        _revoke(session, [auth_session.id], "refresh_token_reuse")
        raise RefreshTokenReused("the refresh token was already used; the session is revoked")
    if auth_session.revoked_at is not None or stored.expires_at <= now:
        raise NotAuthenticated("the refresh token is expired or revoked")
    stored.used_at = now
    return _issue_pair(session, settings, auth_session.user_id, auth_session.id)


def logout(session: Session, session_id: str) -> None:
    _revoke(session, [session_id], "logout")


def change_password(
    session: Session, settings: Settings, user: User, current: str, new: str
) -> TokenPair:
    """Change the password, close every session of the user and open a fresh one."""
    if not passwords.verify_password(user.password_hash, current):
        raise NotAuthenticated("the current password is wrong")
    passwords.check_password_strength(new, field="new_password")
    user.password_hash = passwords.hash_password(new)
    session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoke_reason="password_changed")
    )
    auth_session = AuthSession(id=new_id("ses"), user_id=user.id)
    session.add(auth_session)
    session.flush()
    return _issue_pair(session, settings, user.id, auth_session.id)


def session_id_of(settings: Settings, access_token: str) -> str:
    return tokens.read_access_token(settings.jwt_secret.get_secret_value(), access_token).session_id


def _revoke(session: Session, session_ids: list[str], reason: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id.in_(session_ids), AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoke_reason=reason)
    )


def _issue_pair(session: Session, settings: Settings, user_id: str, session_id: str) -> TokenPair:
    refresh_token = tokens.new_refresh_token()
    session.add(
        RefreshToken(
            session_id=session_id,
            token_hash=tokens.hash_refresh_token(refresh_token),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    access = tokens.issue_access_token(
        settings.jwt_secret.get_secret_value(),
        user_id,
        session_id,
        settings.access_token_ttl_seconds,
    )
    return TokenPair(access, refresh_token, settings.access_token_ttl_seconds)
