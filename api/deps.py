"""Dependencies: the request's unit of work, settings, the caller and their role."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.cross_origin import check_cookie_request
from api.scopes import check_scope
from orderflow.auth import service as auth
from orderflow.auth.tokens import AccessClaims
from orderflow.db import Database
from orderflow.errors import Forbidden, NotAuthenticated, OrderflowError
from orderflow.integrations import keys
from orderflow.models import User
from orderflow.orders.service import Viewer
from orderflow.pagination import DEFAULT_LIMIT, MAX_LIMIT
from orderflow.settings import Settings

T = TypeVar("T")

ACCESS_COOKIE = "orderflow_access"
REFRESH_COOKIE = "orderflow_refresh"

_bearer = HTTPBearer(
    auto_error=False,
    description="JWT from POST /auth/login, or an integration key (ofk_…) from POST /api-keys",
)


# Dependencies that only read the request or app state are ``async def``: FastAPI runs a
# plain ``def`` dependency in a worker thread, a hand-off each. Those that touch the database
# stay plain functions, run in the thread pool.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[Session]:
    """One unit of work per request, committed before the response is sent (scope
    ``function``), rolled back on any error unless the error says its changes must stay.

    Opening a session touches no connection (it connects at its first statement), so it
    happens here on the event loop; ending it is one hand-off to a worker thread."""
    session = database.session()
    try:
        yield session
    except BaseException as error:
        await _end_in_thread(session, commit=_keeps_changes(error))
        raise
    else:
        await _end_in_thread(session, commit=True)


def _keeps_changes(error: BaseException) -> bool:
    """Whether a request that ended with ``error`` still commits: only an error that says
    its changes must stay."""
    return isinstance(error, OrderflowError) and error.keeps_changes


async def _end_in_thread(session: Session, *, commit: bool) -> None:
    """Shielded from cancellation (a client that hangs up must not leak the connection) and
    outside the shared thread limit, as FastAPI ends sync generator dependencies: an ending
    session frees a pooled connection, so it must never wait behind threads waiting for one."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(
            functools.partial(_end, session, commit=commit), limiter=anyio.CapacityLimiter(1)
        )


def _run_in_unit(session: Session, work: Callable[[Session], T]) -> T:
    """``work`` as a request's unit of work: committed when it returns, rolled back on any
    error unless the error says its changes must stay (as ``get_session``)."""
    try:
        result = work(session)
    except BaseException as error:
        _end(session, commit=_keeps_changes(error))
        raise
    _end(session, commit=True)
    return result


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
#: Request sessions open at once, per API process, through ``SessionDep`` and again through
#: ``CallerWork``; more requests wait on the event loop for a turn, not in a worker thread.
#: The pool (``make_engine``: 10 + 10) must hold at least both (12): past ~40 concurrent
#: requests, worker threads holding no connection could otherwise all wait for one held by
#: requests waiting for a thread, until the pool times out. Six keeps the one core an API
#: process gets busy while PostgreSQL answers, with fewer threads fighting over the
#: interpreter lock: 108 orders/s at 32 clients against 96 with 20 (bench.intake); with
#: ``CallerWork``, 361 against 310 with 10, and 333 against 321 with 4.
MAX_OPEN_SESSIONS = 6
SessionDep = Annotated[
    Session, Depends(get_session, scope="function", max_concurrency=MAX_OPEN_SESSIONS)
]


async def access_token_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is not None and credentials.scheme.lower() == "bearer":
        if keys.is_key(credentials.credentials):
            await _limit_key(request, credentials.credentials)
        return credentials.credentials
    cookie = request.cookies.get(ACCESS_COOKIE)
    if cookie:
        check_cookie_request(request)  # a browser's cookie: against cross-site requests
        return cookie
    raise NotAuthenticated("log in first: send Authorization: Bearer <token>")


AccessToken = Annotated[str, Depends(access_token_of)]


def current_user(
    request: Request, session: SessionDep, settings: SettingsDep, token: AccessToken
) -> User:
    if keys.is_key(token):  # acts as the admin who created it, within its scopes
        user = session.get(User, key_caller(request, session, token).created_by)
        if user is None:
            raise NotAuthenticated("the integration key is invalid or revoked")
        return user
    return auth.authenticate(session, settings, token)


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if user.role != auth.ADMIN:
        raise Forbidden("only admins may do this")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


def viewer_of(
    request: Request, session: SessionDep, settings: SettingsDep, token: AccessToken
) -> Viewer:
    """The caller as the order services see them; reads no more of the user than the role.
    An integration key acts as the admin who created it (``_key_viewer``)."""
    if keys.is_key(token):
        return _key_viewer(key_caller(request, session, token))
    return _viewer(auth.identify(session, settings, token))


def _viewer(caller: auth.Caller) -> Viewer:
    return Viewer(user_id=caller.user_id, is_admin=caller.role == auth.ADMIN)


ViewerDep = Annotated[Viewer, Depends(viewer_of)]


async def access_claims(settings: SettingsDep, token: AccessToken) -> AccessClaims:
    """The access token's claims, signature and expiry checked on the event loop without a
    database read: enough to count the request against its caller (``limit_orders``).
    Whether the token's session is still open is checked with the work (``CallerWork``).
    An integration key is counted under a digest of its secret, checked with the work."""
    if keys.is_key(token):
        return AccessClaims(user_id=keys.hash_secret(token).hex()[:32], session_id=_KEY_SESSION)
    return auth.read_claims(settings, token)


AccessClaimsDep = Annotated[AccessClaims, Depends(access_claims)]


@dataclass(frozen=True)
class CallerWork:
    """The intake's way to run a request: who the caller is (their session still open), the
    work itself and its commit, all in one hand-off to a worker thread, where a plain
    ``def`` endpoint with ``ViewerDep`` and ``SessionDep`` takes three (identify, endpoint,
    commit). Measured on ``POST /orders`` (bench.intake, 32 clients, six runs each): 4.5 →
    3.7 ms of API CPU an order, 304 → 363 orders/s. At most ``MAX_OPEN_SESSIONS`` run at
    once per process, on a limiter of their own (``install_caller_work``)."""

    database: Database
    claims: AccessClaims
    slots: anyio.CapacityLimiter
    #: The request, when the caller sent an integration key (checked with the work).
    key_request: tuple[Request, str] | None = None

    async def run(self, work: Callable[[Session, Viewer], T]) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(self._in_thread, work), limiter=self.slots
        )

    def _in_thread(self, work: Callable[[Session, Viewer], T]) -> T:
        return _run_in_unit(self.database.session(), lambda s: work(s, self._viewer(s)))

    def _viewer(self, session: Session) -> Viewer:
        if self.key_request is not None:
            request, secret = self.key_request
            return _key_viewer(key_caller(request, session, secret))
        return _viewer(auth.caller_of(session, self.claims))


def install_caller_work(app_state: Any) -> None:
    """Called at start-up, on the event loop."""
    app_state.caller_work_slots = anyio.CapacityLimiter(MAX_OPEN_SESSIONS)


async def caller_work(
    request: Request,
    database: Annotated[Database, Depends(get_database)],
    claims: AccessClaimsDep,
    token: AccessToken,
) -> CallerWork:
    key_request = (request, token) if keys.is_key(token) else None
    return CallerWork(database, claims, request.app.state.caller_work_slots, key_request)


CallerWorkDep = Annotated[CallerWork, Depends(caller_work)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size, at most 100")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
DEFAULT_PAGE_LIMIT = DEFAULT_LIMIT


# --- integration keys (issue 15) -------------------------------------------------------------
#: ``AccessClaims.session_id`` of a caller that sent an integration key (it has no session).
_KEY_SESSION = "integration-key"


def key_caller(request: Request, session: Session, secret: str) -> keys.KeyCaller:
    """The integration key behind ``secret``, allowed on this route by its scopes
    (``api/scopes.py``), else 401 (unknown or revoked) or 403 (outside its scopes)."""
    caller = keys.authenticate_key(session, secret)
    check_scope(request, caller)
    return caller


def _key_viewer(caller: keys.KeyCaller) -> Viewer:
    """A key acts as the admin who created it: its orders and Idempotency-Keys are theirs,
    and what it does is on the record under their id."""
    return Viewer(user_id=caller.created_by, is_admin=True)


async def _limit_key(request: Request, secret: str) -> None:
    """Every request with an integration key counts against that key (on the event loop,
    before any database work): ``ORDERFLOW_RATE_LIMIT_REQUESTS_PER_KEY`` a window."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.hit(request.app.state.rate_limits.requests_per_key, secret)
