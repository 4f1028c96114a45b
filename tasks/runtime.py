"""What tasks need per worker process, built on first use (after the fork), never at import.

A worker on the ``threads`` pool runs many tasks at once in one process: each of these is
built once, under a lock, and shared by every thread. The database pool is then sized for
the threads (``configure_pool``); the providers' SDK clients reuse their connections
(Stripe's ``RequestsClient`` keeps a ``requests.Session`` per thread, SendGrid's and
Shippo's clients a shared keep-alive pool), so a charge does not open a TLS connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from orderflow.db import Database, make_engine
from orderflow.email import EmailSender, email_sender_from_settings
from orderflow.metrics import (
    InstrumentedEmailSender,
    InstrumentedPaymentProvider,
    InstrumentedShippingProvider,
    InstrumentedSmsSender,
)
from orderflow.payments import PaymentProvider, payment_provider_from_settings
from orderflow.settings import Settings, get_settings
from orderflow.shipping import ShippingProvider, shipping_provider_from_settings
from orderflow.sms import SmsSender, sms_sender_from_settings

T = TypeVar("T")


class _Once(Generic[T]):
    """``build()`` called once per process, however many threads ask at the same moment
    (``functools.cache`` may call it twice: two engines, one of them leaked)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._built: list[T] = []
        self.__doc__ = build.__doc__

    def __call__(self) -> T:
        built = self._built
        if built:
            return built[0]
        with self._lock:
            if not self._built:
                self._built = [self._build()]
            return self._built[0]

    def cache_clear(self) -> None:
        with self._lock:
            self._built = []


def settings() -> Settings:
    return get_settings()


#: Connections a process keeps (``pool_size``) and may open beyond them (``max_overflow``).
#: A prefork process runs one task at a time: 2 and 2. A threads worker: one per thread
#: (``configure_pool``); they are opened only when that many threads are in a transaction
#: at once, and a step holds none while it waits on a provider.
_pool: tuple[int, int] = (2, 2)


def configure_pool(concurrent_tasks: int) -> None:
    """Size the database pool for a process that runs ``concurrent_tasks`` tasks at once
    (the worker's threads); called before the first task builds the engine."""
    global _pool
    _pool = (max(2, concurrent_tasks), 2)
    database.cache_clear()


def pool_size() -> tuple[int, int]:
    return _pool


def _database() -> Database:
    size, overflow = _pool
    return Database(make_engine(settings(), pool_size=size, max_overflow=overflow))


def _payment_provider() -> PaymentProvider:
    """The configured provider, every call counted and timed (``orderflow_provider_*``)."""
    provider = payment_provider_from_settings(
        settings(), timeout=settings().provider_timeout_seconds
    )
    return InstrumentedPaymentProvider(provider, settings().payment_provider)


def _email_sender() -> EmailSender:
    sender = email_sender_from_settings(settings(), timeout=settings().provider_timeout_seconds)
    return InstrumentedEmailSender(sender, settings().email_provider)


def _sms_sender() -> SmsSender:
    sender = sms_sender_from_settings(settings(), timeout=settings().provider_timeout_seconds)
    return InstrumentedSmsSender(sender, settings().sms_provider)


def _shipping_provider() -> ShippingProvider:
    provider = shipping_provider_from_settings(
        settings(), timeout=settings().provider_timeout_seconds
    )
    return InstrumentedShippingProvider(provider, settings().shipping_provider)


database = _Once(_database)
payment_provider = _Once(_payment_provider)
email_sender = _Once(_email_sender)
sms_sender = _Once(_sms_sender)
shipping_provider = _Once(_shipping_provider)


#: Step task names this worker process runs itself when a step schedules them (``pipeline``).
_steps_served: frozenset[str] = frozenset()


def serve_steps_here(topics: frozenset[str]) -> None:
    global _steps_served
    _steps_served = topics


def steps_served_here() -> frozenset[str]:
    return _steps_served


def reset() -> None:
    """Forget what a parent process built; called in each new worker process."""
    for built in (database, payment_provider, email_sender, sms_sender, shipping_provider):
        built.cache_clear()
