"""Payments: one small interface, a local implementation and a Stripe one.

Use :func:`payment_provider_from_settings` to get the configured provider; the Stripe SDK
is imported only when the Stripe provider is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orderflow.payments.local import LocalPaymentProvider
from orderflow.payments.provider import (
    IntentStatus,
    PaymentError,
    PaymentIdempotencyConflict,
    PaymentNotFound,
    PaymentProvider,
    PaymentProviderMisconfigured,
    PaymentProviderUnavailable,
    PaymentRejected,
    PaymentResult,
    RefundResult,
)

if TYPE_CHECKING:
    from orderflow.settings import Settings

__all__ = [
    "IntentStatus",
    "LocalPaymentProvider",
    "PaymentError",
    "PaymentIdempotencyConflict",
    "PaymentNotFound",
    "PaymentProvider",
    "PaymentProviderMisconfigured",
    "PaymentProviderUnavailable",
    "PaymentRejected",
    "PaymentResult",
    "RefundResult",
    "payment_provider_from_settings",
]


def payment_provider_from_settings(
    settings: Settings, *, timeout: float | None = None
) -> PaymentProvider:
    """The provider ``ORDERFLOW_PAYMENT_PROVIDER`` names, built once; reuse the instance.

    ``local`` keeps its intents under ``<state_dir>/payments`` so every process on the
    machine sees the same payments. ``stripe`` uses ``ORDERFLOW_STRIPE_API_KEY`` and, when
    set, ``ORDERFLOW_STRIPE_API_BASE`` (a stub's address in tests).
    """
    if settings.payment_provider == "stripe":
        from orderflow.payments.stripe_provider import (
            DEFAULT_TIMEOUT_SECONDS,
            StripePaymentProvider,
        )

        if settings.stripe_api_key is None:  # Settings refuses this already; be explicit
            raise ValueError("ORDERFLOW_STRIPE_API_KEY is required for the stripe provider")
        return StripePaymentProvider(
            settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
            timeout=DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout,
        )
    return LocalPaymentProvider(store_dir=settings.state_dir / "payments")
