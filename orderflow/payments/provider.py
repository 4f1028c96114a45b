"""The payments interface: one small Protocol, its result types and its errors.

Both implementations (``local`` and ``stripe``) speak Stripe's vocabulary: PaymentIntent
ids, Stripe's test PaymentMethod ids and Stripe's decline codes, so a checkout client and
the pipeline behave the same whichever is configured.

Error contract, which the pipeline's retry policy relies on:

* a **card decline is not an exception**: ``charge`` returns ``IntentStatus.DECLINED``
  with a ``decline_code`` (``generic_decline``, ``insufficient_funds``, ...);
* :class:`PaymentProviderUnavailable` is **transient** (5xx, 429, 409 "in progress",
  timeouts, connection errors): retry later with the *same* idempotency key;
* :class:`PaymentRejected` and its subclasses are **permanent** (invalid request, unknown
  payment method, refund above what was captured, wrong API key): retrying the same call
  cannot succeed, so fail the step with a named reason an operator can act on.

Messages never contain secrets: they carry the provider's error type/code, the HTTP
status and the request id only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orderflow.money import Money


class IntentStatus(enum.StrEnum):
    """Where a PaymentIntent stands, reduced to what the pipeline must decide on.

    Stripe's richer statuses are folded in: ``requires_payment_method`` after a failed
    attempt and ``canceled`` are ``DECLINED``; ``requires_confirmation`` and
    ``requires_capture`` (not used by our automatic-capture flow) are ``PROCESSING``,
    i.e. "not final yet, ask again later".
    """

    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"

    @property
    def is_final(self) -> bool:
        return self in (IntentStatus.SUCCEEDED, IntentStatus.DECLINED)


#: Stripe's PaymentIntent statuses as the pipeline reads them; the local provider speaks the
#: same vocabulary.
INTENT_STATUS_BY_STRIPE_STATUS: Mapping[str, IntentStatus] = {
    "succeeded": IntentStatus.SUCCEEDED,
    "requires_payment_method": IntentStatus.DECLINED,
    "canceled": IntentStatus.DECLINED,
    "requires_action": IntentStatus.REQUIRES_ACTION,
    "processing": IntentStatus.PROCESSING,
    "requires_confirmation": IntentStatus.PROCESSING,
    "requires_capture": IntentStatus.PROCESSING,
}


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The outcome of a charge, or the state of an intent found by ``retrieve``.

    ``order_id`` comes from the intent's ``metadata.order_id`` (None if the provider did
    not return it). ``provider_status`` is the provider's own status string, kept for
    event logs and diagnostics.
    """

    intent_id: str
    status: IntentStatus
    amount: Money
    decline_code: str | None = None
    order_id: str | None = None
    provider_status: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is IntentStatus.SUCCEEDED


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund as the provider recorded it; ``status`` is Stripe's (``succeeded``,
    ``pending``, ``requires_action``, ``failed``, ``canceled``)."""

    refund_id: str
    amount: Money
    status: str
    payment_intent_id: str | None = None


class PaymentError(Exception):
    """Base of every error the payments adapters raise."""

    def __init__(
        self, message: str, *, code: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class PaymentProviderUnavailable(PaymentError):
    """Transient: the provider could not be reached or asked us to come back later.

    Retry with backoff and the same idempotency key. ``retry_after`` is the provider's
    hint in seconds when it gave one (``Retry-After`` on a 429).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after


class PaymentRejected(PaymentError):
    """Permanent: the provider refused the request as made (a 4xx other than a decline).

    ``code`` is the provider's error code, e.g. ``resource_missing``,
    ``amount_too_large``, ``charge_already_refunded``, ``parameter_invalid_integer``.
    """


class PaymentNotFound(PaymentRejected):
    """The PaymentIntent (or PaymentMethod) does not exist at the provider."""


class PaymentIdempotencyConflict(PaymentRejected):
    """An idempotency key was reused with different parameters: a bug in key derivation."""


class PaymentProviderMisconfigured(PaymentRejected):
    """Authentication or permission refused (wrong or revoked API key): fix configuration."""


@runtime_checkable
class PaymentProvider(Protocol):
    """What the pipeline needs from a payment provider, and nothing more.

    Every mutating call takes an ``idempotency_key`` derived by the caller from domain ids
    (e.g. ``f"{order_id}:charge:{attempt}"``), never a random value: a retried task, a
    redelivered message or a re-driven order then repeats the *same* request, and the
    provider answers it with the first result instead of charging or refunding twice.
    """

    def charge(
        self, *, order_id: str, amount: Money, payment_method: str, idempotency_key: str
    ) -> PaymentResult:
        """Create and confirm a payment. A decline returns ``DECLINED``; it does not raise."""
        ...

    def refund(
        self,
        *,
        order_id: str,
        payment_intent_id: str,
        amount: Money,
        idempotency_key: str,
        refund_id: str | None = None,
    ) -> RefundResult:
        """Refund ``amount`` of a succeeded payment; never more than is left to refund.
        ``refund_id`` (ours) travels in the provider's metadata, for its webhooks."""
        ...

    def retrieve(self, payment_intent_id: str) -> PaymentResult:
        """Current state of an intent (for the reconciler). Raises PaymentNotFound."""
        ...
