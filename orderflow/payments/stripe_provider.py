"""The Stripe payment provider, through the official ``stripe`` SDK (v16 ``StripeClient``).

Named ``stripe_provider`` so it never shadows the SDK package.

The SDK client is built once per provider instance and touches no global state: the API
base goes in ``base_addresses`` (a stub's address in tests, ``ORDERFLOW_STRIPE_API_BASE``),
the SDK's own retries are off (``max_network_retries=0``: the pipeline retries with
backoff, the same idempotency key and its own bookkeeping), and the timeout is set on the
SDK's ``RequestsClient``.

Charges are PaymentIntents created with ``confirm=true`` and ``automatic_payment_methods=
{enabled: true, allow_redirects: "never"}``: without redirect-based methods, confirming
needs no ``return_url``, and a card that needs 3-D Secure comes back as
``requires_action`` (the order then waits for the webhook). Not ``payment_method_types``:
the API version stripe 16 pins (``2026-10-28.endive``) refuses it as a writable parameter
(400 ``payment_method_types_no_longer_supported``, since ``2026-09-30``), while
``automatic_payment_methods`` works on every version since 2023.
"""

from __future__ import annotations

from typing import Any

import stripe
from stripe.params import PaymentIntentCreateParams, RefundCreateParams

from orderflow.money import Money
from orderflow.payments.provider import (
    INTENT_STATUS_BY_STRIPE_STATUS,
    IntentStatus,
    PaymentError,
    PaymentIdempotencyConflict,
    PaymentNotFound,
    PaymentProviderMisconfigured,
    PaymentProviderUnavailable,
    PaymentRejected,
    PaymentResult,
    RefundResult,
)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0


class StripePaymentProvider:
    """A :class:`~orderflow.payments.provider.PaymentProvider` backed by Stripe."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout: float | None = None,
        stripe_version: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("a Stripe API key is required")
        connect = DEFAULT_CONNECT_TIMEOUT_SECONDS if connect_timeout is None else connect_timeout
        self._http = stripe.RequestsClient(timeout=(min(connect, timeout), timeout))
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=0,
            http_client=self._http,
            stripe_version=stripe_version,
        )

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}()"

    def charge(
        self, *, order_id: str, amount: Money, payment_method: str, idempotency_key: str
    ) -> PaymentResult:
        params: PaymentIntentCreateParams = {
            "amount": amount.amount,
            "currency": amount.currency,
            "payment_method": payment_method,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "confirm": True,
            "metadata": {"order_id": order_id},
        }
        try:
            intent = self._client.v1.payment_intents.create(
                params,
                {"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            return _declined_result(exc, amount, order_id)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return _intent_result(intent.to_dict())

    def refund(
        self,
        *,
        order_id: str,
        payment_intent_id: str,
        amount: Money,
        idempotency_key: str,
        refund_id: str | None = None,
    ) -> RefundResult:
        params: RefundCreateParams = {
            "payment_intent": payment_intent_id,
            "amount": amount.amount,
            "metadata": {"order_id": order_id, **({"refund_id": refund_id} if refund_id else {})},
        }
        try:
            refund = self._client.v1.refunds.create(
                params,
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        data = refund.to_dict()
        return RefundResult(
            refund_id=data["id"],
            amount=Money(int(data["amount"]), data["currency"]),
            status=data.get("status") or "pending",
            payment_intent_id=_id_of(data.get("payment_intent")),
        )

    def retrieve(self, payment_intent_id: str) -> PaymentResult:
        try:
            intent = self._client.v1.payment_intents.retrieve(payment_intent_id)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return _intent_result(intent.to_dict())

    def close(self) -> None:
        """Release pooled connections (the provider stays usable: sessions are lazy)."""
        self._http.close()


# -- mapping responses ------------------------------------------------------------------


def _intent_result(intent: dict[str, Any]) -> PaymentResult:
    """A PaymentResult from a PaymentIntent as a plain dict (``StripeObject.to_dict()``)."""
    status = INTENT_STATUS_BY_STRIPE_STATUS.get(intent.get("status") or "", IntentStatus.PROCESSING)
    decline_code = None
    if status is IntentStatus.DECLINED:
        decline_code = _decline_code_of(intent.get("last_payment_error")) or intent.get("status")
    metadata = intent.get("metadata") or {}
    # A success reports what was received, which the recording side compares with the charge
    # asked for; anything else reports what was asked.
    received = intent.get("amount_received")
    amount = received if status is IntentStatus.SUCCEEDED and received is not None else None
    return PaymentResult(
        intent_id=str(intent["id"]),
        status=status,
        amount=Money(int(intent["amount"] if amount is None else amount), str(intent["currency"])),
        decline_code=decline_code,
        order_id=metadata.get("order_id"),
        provider_status=intent.get("status"),
    )


def _declined_result(exc: stripe.CardError, amount: Money, order_id: str) -> PaymentResult:
    """A card error on confirm is a decline, not a failure of ours.

    Stripe attaches the PaymentIntent (now ``requires_payment_method``) to the error; its
    id is what the order records, and a replay with the same key returns the same error.
    """
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    decline_code = error.get("decline_code") or exc.code or "card_declined"
    intent = error.get("payment_intent")
    if isinstance(intent, dict) and intent.get("id"):
        result = _intent_result(intent)
        return PaymentResult(
            intent_id=result.intent_id,
            status=IntentStatus.DECLINED,
            amount=result.amount,
            decline_code=decline_code,
            order_id=result.order_id or order_id,
            provider_status=result.provider_status,
        )
    charge_id = error.get("charge")
    return PaymentResult(
        intent_id=charge_id or "",
        status=IntentStatus.DECLINED,
        amount=amount,
        decline_code=decline_code,
        order_id=order_id,
        provider_status="requires_payment_method",
    )


def _decline_code_of(error: Any) -> str | None:
    if not error:
        return None
    code: str | None = error.get("decline_code") or error.get("code")
    return code


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    identifier: str | None = value.get("id")
    return identifier


# -- mapping errors ---------------------------------------------------------------------


def _describe(exc: stripe.StripeError, fallback: str) -> str:
    """A message safe to log: the error's type/code, HTTP status and request id.

    Stripe's own messages can quote (masked) key material on auth errors, so they are
    only used for invalid requests, where they name the offending parameter.
    """
    parts = [fallback]
    if exc.code:
        parts.append(f"code={exc.code}")
    if exc.http_status:
        parts.append(f"http_status={exc.http_status}")
    if exc.request_id:
        parts.append(f"request_id={exc.request_id}")
    return ", ".join(parts)


def _retry_after(exc: stripe.StripeError) -> float | None:
    value = (exc.headers or {}).get("retry-after") or (exc.headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _translate(exc: stripe.StripeError) -> PaymentError:
    """Map the SDK's exceptions onto our transient/permanent split (see provider.py)."""
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
        return PaymentProviderUnavailable(_describe(exc, f"could not reach Stripe ({cause})"))
    if isinstance(exc, stripe.RateLimitError):
        return PaymentProviderUnavailable(
            _describe(exc, "Stripe rate limit"),
            code=exc.code,
            http_status=status,
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return PaymentProviderMisconfigured(
            _describe(exc, "Stripe refused our credentials"), code=exc.code, http_status=status
        )
    if isinstance(exc, stripe.IdempotencyError):
        return PaymentIdempotencyConflict(
            _describe(exc, "idempotency key reused with different parameters"),
            code="idempotency_error",
            http_status=status,
        )
    if _is_transient_status(exc):
        return PaymentProviderUnavailable(
            _describe(exc, "Stripe is unavailable"),
            code=exc.code,
            http_status=status,
            retry_after=_retry_after(exc),
        )
    message = exc.user_message or "Stripe rejected the request"
    if exc.code == "resource_missing":
        return PaymentNotFound(_describe(exc, message), code=exc.code, http_status=status)
    return PaymentRejected(_describe(exc, message), code=exc.code, http_status=status)


def _is_transient_status(exc: stripe.StripeError) -> bool:
    """5xx, 409 (another request with this key is still in flight) and an explicit
    ``Stripe-Should-Retry: true`` are transient; a missing status means we never got a
    proper answer, and an error raised on a 2xx (an unreadable body) leaves the outcome
    unknown just the same.

    A 5xx stays transient even with ``Stripe-Should-Retry: false``: the outcome is then
    unknown, not refused, and declaring the payment failed could release stock for an
    order that was in fact charged. The caller's bounded retries end in a named failure
    that an operator (or the reconciler, via ``retrieve``) resolves.
    """
    status = exc.http_status
    if status is None or status < 400 or status >= 500 or status == 409:
        return True
    headers = exc.headers or {}
    return (headers.get("stripe-should-retry") or headers.get("Stripe-Should-Retry")) == "true"
