"""What tasks need per worker process, built on first use (after the fork), never at import."""

from __future__ import annotations

from functools import cache

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


def settings() -> Settings:
    return get_settings()


@cache
def database() -> Database:
    return Database(make_engine(settings(), pool_size=2))


@cache
def payment_provider() -> PaymentProvider:
    """The configured provider, every call counted and timed (``orderflow_provider_*``)."""
    provider = payment_provider_from_settings(
        settings(), timeout=settings().provider_timeout_seconds
    )
    return InstrumentedPaymentProvider(provider, settings().payment_provider)


@cache
def email_sender() -> EmailSender:
    sender = email_sender_from_settings(settings(), timeout=settings().provider_timeout_seconds)
    return InstrumentedEmailSender(sender, settings().email_provider)


@cache
def sms_sender() -> SmsSender:
    sender = sms_sender_from_settings(settings(), timeout=settings().provider_timeout_seconds)
    return InstrumentedSmsSender(sender, settings().sms_provider)


@cache
def shipping_provider() -> ShippingProvider:
    provider = shipping_provider_from_settings(
        settings(), timeout=settings().provider_timeout_seconds
    )
    return InstrumentedShippingProvider(provider, settings().shipping_provider)


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
