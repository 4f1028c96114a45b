"""Rate limits, shared by every API process through Redis.

Fixed windows: one atomic Lua script increments a counter and starts its window (EXPIRE) on
the first hit, so two API processes never both think they saw the first request. Over the
limit the caller gets 429 problem+json with ``Retry-After`` (the seconds left in the
window). Redis unavailable: the limiter lets requests through (and logs), because refusing
checkouts is worse than letting a burst pass; after a failure it lets them through without
asking Redis for ``PAUSE_AFTER_FAILURE_SECONDS``, so an API host cut off from Redis (packets
dropped, every call waiting out its timeout) keeps answering at its usual speed.

* login: every attempt counts against the client address; failed attempts count against
  the account, and an account over its limit is refused even with the right password
  until the window ends;
* ``POST /orders``: every request counts against the caller (the authenticated user);
* integration keys: every request with a key counts against that key (``api.deps``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import redis
import redis.asyncio
import structlog
from fastapi import Depends, Request

from api.deps import AccessClaimsDep
from api.schemas.auth import LoginRequest
from orderflow import metrics
from orderflow.auth.service import normalise_email
from orderflow.errors import NotAuthenticated, RateLimited
from orderflow.settings import Settings

log = structlog.get_logger(__name__)

KEY_PREFIX = "orderflow:ratelimit:"
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    window_seconds: int
    refusal: str


#: After Redis failed the limiter, requests pass unchecked this long before it asks again.
PAUSE_AFTER_FAILURE_SECONDS = 5.0


class RateLimiter:
    """On the event loop (asyncio Redis client): counting costs a request no worker thread."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        enabled: bool = True,
        pause_seconds: float = PAUSE_AFTER_FAILURE_SECONDS,
    ) -> None:
        self.client, self.enabled = client, enabled
        self._hit = client.register_script(_HIT)
        self._pause_seconds = pause_seconds
        self._paused_until = 0.0  # monotonic; one event loop, so no lock

    def _in_use(self) -> bool:
        return self.enabled and time.monotonic() >= self._paused_until

    def _unavailable(self, error: redis.RedisError) -> None:
        self._paused_until = time.monotonic() + self._pause_seconds
        log.warning(
            "rate limiter unavailable; letting requests through",
            error=str(error),
            unchecked_for_seconds=self._pause_seconds,
        )

    async def hit(self, limit: Limit, subject: str, *, refuse: bool = True) -> None:
        """Count one event for ``subject``; over the limit, raise ``RateLimited``."""
        if not self._in_use():
            return
        try:
            count, ttl = await self._hit(keys=[_key(limit, subject)], args=[limit.window_seconds])
        except redis.RedisError as error:
            self._unavailable(error)
            return
        if refuse and int(count) > limit.limit:
            self._refuse(limit, int(ttl))

    async def check(self, limit: Limit, subject: str) -> None:
        """Refuse when ``subject`` is already at its limit, without counting."""
        if not self._in_use():
            return
        key = _key(limit, subject)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        except redis.RedisError as error:
            self._unavailable(error)
            return
        if count is not None and int(count) >= limit.limit:
            self._refuse(limit, int(ttl))

    @staticmethod
    def _refuse(limit: Limit, ttl: int) -> None:
        retry_after = max(1, ttl if ttl > 0 else limit.window_seconds)
        metrics.RATE_LIMITED.labels(limit.name).inc()
        log.info("rate limited", limit=limit.name, retry_after=retry_after)
        raise RateLimited(f"{limit.refusal}; retry in {retry_after} s", retry_after=retry_after)


def _key(limit: Limit, subject: str) -> str:
    # Hashed: no e-mail address or IP address in Redis keys.
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{limit.name}:{digest}"


@dataclass(frozen=True)
class Limits:
    orders_per_caller: Limit
    login_failures_per_account: Limit
    login_attempts_per_address: Limit
    requests_per_key: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        window = settings.rate_limit_window_seconds
        return cls(
            Limit(
                "orders_per_caller",
                settings.rate_limit_orders_per_caller,
                window,
                "too many orders from this caller",
            ),
            Limit(
                "login_failures_per_account",
                settings.rate_limit_login_failures_per_account,
                window,
                "too many failed logins for this account",
            ),
            Limit(
                "login_attempts_per_address",
                settings.rate_limit_login_attempts_per_address,
                window,
                "too many login attempts from this address",
            ),
            Limit(
                "requests_per_key",
                settings.rate_limit_requests_per_key,
                window,
                "too many requests with this integration key",
            ),
        )


def install_rate_limits(app_state: Any, client: redis.asyncio.Redis, settings: Settings) -> None:
    """Called at start-up, on the event loop, with the API's asyncio Redis client."""
    app_state.rate_limiter = RateLimiter(client, enabled=settings.rate_limit_enabled)
    app_state.rate_limits = Limits.from_settings(settings)


async def _limiter(request: Request) -> tuple[RateLimiter, Limits]:
    return request.app.state.rate_limiter, request.app.state.rate_limits


LimiterDep = Annotated[tuple[RateLimiter, Limits], Depends(_limiter)]


async def limit_orders(claims: AccessClaimsDep, limiter: LimiterDep) -> None:
    """``POST /orders``: at most ``ORDERFLOW_RATE_LIMIT_ORDERS_PER_CALLER`` a window, counted
    against the user a validly signed token names, before any database work (a token of a
    session closed since is counted, then refused with 401)."""
    rate_limiter, limits = limiter
    await rate_limiter.hit(limits.orders_per_caller, claims.user_id)


async def limit_logins(
    request: Request, body: LoginRequest, limiter: LimiterDep
) -> AsyncIterator[None]:
    """``POST /auth/login``: attempts per client address, failures per account."""
    rate_limiter, limits = limiter
    address = request.client.host if request.client else "unknown"
    await rate_limiter.hit(limits.login_attempts_per_address, address)
    account = normalise_email(body.email)
    await rate_limiter.check(limits.login_failures_per_account, account)
    try:
        yield
    except NotAuthenticated:
        await rate_limiter.hit(limits.login_failures_per_account, account, refuse=False)
        raise


OrderRateLimit = Depends(limit_orders)
LoginRateLimit = Depends(limit_logins, scope="function")
