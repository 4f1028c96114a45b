"""The local payment provider: the default, no network, Stripe's rules and vocabulary.

It honours Stripe's test PaymentMethod ids (``pm_card_visa`` succeeds,
``pm_card_chargeDeclined`` / ``pm_card_chargeDeclinedInsufficientFunds`` are declined,
``pm_card_authenticationRequired`` needs customer action, ...). Any other id is refused
permanently with :class:`PaymentNotFound` (code ``resource_missing``), exactly as Stripe
answers an unknown PaymentMethod, so a checkout client sees the same thing from both.

Idempotency is deterministic: the intent id is derived from a hash of the idempotency key
(``pi_local_<24 hex>``), so a retried charge lands on the same intent and never creates a
second payment, even in another process. As at Stripe, a replay repeats the *first*
answer (a charge that said ``requires_action`` says so again after the customer
authenticated; ``retrieve`` tells the current state), reusing a key with different
parameters raises :class:`PaymentIdempotencyConflict`, and validation failures are not
remembered, so a corrected retry can reuse the key.

State (intents and refunds) lives in a store:

* without ``store_dir``: in memory, per provider instance. ``retrieve`` only knows intents
  created by this instance, and refund limits are tracked per instance;
* with ``store_dir`` (what the factory configures: ``<state_dir>/payments``): one JSON
  file per object, written atomically and guarded by an exclusive ``flock`` so API,
  workers and the reconciler on one machine share it. Not shared across machines, and on
  platforms without ``fcntl`` only threads (not processes) are serialised.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orderflow.files import write_atomically
from orderflow.money import Money
from orderflow.payments.provider import (
    INTENT_STATUS_BY_STRIPE_STATUS,
    IntentStatus,
    PaymentIdempotencyConflict,
    PaymentNotFound,
    PaymentRejected,
    PaymentResult,
    RefundResult,
)

if sys.platform == "win32":  # pragma: no cover - no fcntl: threads only

    def _lock_fd(fd: int) -> None:
        return None

    def _unlock_fd(fd: int) -> None:
        return None

else:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


Record = dict[str, Any]

INTENT_PREFIX = "pi_local_"
REFUND_PREFIX = "re_local_"
_OBJECT_ID = re.compile(r"^(pi|re)_local_[0-9a-f]{24}$")
#: Code Stripe puts in ``last_payment_error`` when 3-D Secure authentication fails.
AUTHENTICATION_FAILURE = "payment_intent_authentication_failure"


@dataclass(frozen=True, slots=True)
class CardOutcome:
    """What confirming a PaymentIntent with a test PaymentMethod does.

    ``stripe_status`` is the intent's status afterwards; ``code`` / ``decline_code`` are
    what Stripe reports in the card error (``None`` unless declined).
    """

    stripe_status: str
    code: str | None = None
    decline_code: str | None = None

    @property
    def status(self) -> IntentStatus:
        return INTENT_STATUS_BY_STRIPE_STATUS[self.stripe_status]


_SUCCEEDS = CardOutcome("succeeded")
_AUTHENTICATES = CardOutcome("requires_action")


def _declined(code: str, decline_code: str) -> CardOutcome:
    return CardOutcome("requires_payment_method", code, decline_code)


#: Stripe's test PaymentMethod ids and what each does on confirmation.
TEST_PAYMENT_METHODS: Mapping[str, CardOutcome] = {
    "pm_card_visa": _SUCCEEDS,
    "pm_card_visa_debit": _SUCCEEDS,
    "pm_card_mastercard": _SUCCEEDS,
    "pm_card_amex": _SUCCEEDS,
    "pm_card_chargeDeclined": _declined("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": _declined("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedLostCard": _declined("card_declined", "lost_card"),
    "pm_card_chargeDeclinedStolenCard": _declined("card_declined", "stolen_card"),
    "pm_card_chargeDeclinedFraudulent": _declined("card_declined", "fraudulent"),
    "pm_card_chargeDeclinedExpiredCard": _declined("expired_card", "expired_card"),
    "pm_card_chargeDeclinedIncorrectCvc": _declined("incorrect_cvc", "incorrect_cvc"),
    "pm_card_chargeDeclinedProcessingError": _declined("processing_error", "processing_error"),
    "pm_card_authenticationRequired": _AUTHENTICATES,
    "pm_card_threeDSecure2Required": _AUTHENTICATES,
}

#: Stripe's minimum charge amounts (minor units) for common currencies; others: 1.
MINIMUM_CHARGE: Mapping[str, int] = {
    "usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50,
}  # fmt: skip


def outcome_for(payment_method: str) -> CardOutcome:
    """The outcome of a test PaymentMethod id; an unknown id is refused like Stripe does."""
    try:
        return TEST_PAYMENT_METHODS[payment_method]
    except KeyError:
        raise PaymentNotFound(
            f"No such PaymentMethod: {payment_method!r}",
            code="resource_missing",
            http_status=400,
        ) from None


def derive_object_id(prefix: str, namespace: str, idempotency_key: str) -> str:
    """``prefix`` + 24 hex chars of SHA-256 over the namespaced key: same key, same id."""
    digest = hashlib.sha256(f"{namespace}\x00{idempotency_key}".encode()).hexdigest()
    return f"{prefix}{digest[:24]}"


def validate_charge_amount(amount: Money) -> None:
    """Refuse what Stripe would refuse: non-positive or below the currency's minimum."""
    if amount.amount <= 0:
        raise PaymentRejected(
            "Invalid positive integer", code="parameter_invalid_integer", http_status=400
        )
    minimum = MINIMUM_CHARGE.get(amount.currency, 1)
    if amount.amount < minimum:
        raise PaymentRejected(
            f"Amount must be at least {minimum} {amount.currency} minor units",
            code="amount_too_small",
            http_status=400,
        )


# -- stores -----------------------------------------------------------------------------


class IntentStore(Protocol):
    """Keeps intents and refunds as JSON-able dicts keyed by their ``id``."""

    def locked(self) -> contextlib.AbstractContextManager[None]: ...

    def load(self, object_id: str) -> Record | None: ...

    def save(self, record: Record) -> None: ...

    def all(self, prefix: str) -> list[Record]: ...


class MemoryStore:
    """Per-instance, in-process store (tests and one-off use)."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def load(self, object_id: str) -> Record | None:
        record = self._records.get(object_id)
        return copy.deepcopy(record) if record is not None else None

    def save(self, record: Record) -> None:
        self._records[record["id"]] = copy.deepcopy(record)

    def all(self, prefix: str) -> list[Record]:
        return [copy.deepcopy(r) for key, r in self._records.items() if key.startswith(prefix)]


class FileStore:
    """One JSON file per object in a directory, shared by every process on the machine."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _lock_fd(fd)
                try:
                    yield
                finally:
                    _unlock_fd(fd)
            finally:
                os.close(fd)

    def _path(self, object_id: str) -> Path | None:
        # Ids arrive from outside (webhooks, operators): only ours may name a file.
        return self._dir / f"{object_id}.json" if _OBJECT_ID.match(object_id) else None

    def load(self, object_id: str) -> Record | None:
        path = self._path(object_id)
        if path is None:
            return None
        try:
            data: Record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data

    def save(self, record: Record) -> None:
        path = self._path(record["id"])
        if path is None:
            raise ValueError(f"not a local payment object id: {record['id']!r}")
        write_atomically(path, json.dumps(record, sort_keys=True).encode())

    def all(self, prefix: str) -> list[Record]:
        records = []
        for path in sorted(self._dir.glob(f"{prefix}*.json")):
            record = self.load(path.stem)
            if record is not None:
                records.append(record)
        return records


# -- the provider -----------------------------------------------------------------------


class LocalPaymentProvider:
    """A :class:`~orderflow.payments.provider.PaymentProvider` that never leaves the box."""

    def __init__(self, store_dir: Path | None = None) -> None:
        self._store: IntentStore = FileStore(store_dir) if store_dir else MemoryStore()

    def charge(
        self, *, order_id: str, amount: Money, payment_method: str, idempotency_key: str
    ) -> PaymentResult:
        request = _charge_request(order_id, amount, payment_method)
        intent_id = derive_object_id(INTENT_PREFIX, "charge", idempotency_key)
        with self._store.locked():
            existing = self._store.load(intent_id)
            if existing is not None:
                _same_request_or_conflict(existing, request, idempotency_key)
                # Like Stripe, a replay repeats the first answer (retrieve gives the news).
                return _result({**existing, **existing.get("first_answer", {})})
            # Validate after the replay check, like Stripe: a saved result always replays.
            validate_charge_amount(amount)
            outcome = outcome_for(payment_method)
            record = _new_intent(intent_id, request, outcome)
            self._store.save(record)
        return _result(record)

    def refund(
        self,
        *,
        order_id: str,
        payment_intent_id: str,
        amount: Money,
        idempotency_key: str,
        refund_id: str | None = None,
    ) -> RefundResult:
        request = {
            "order_id": order_id,
            "payment_intent": payment_intent_id,
            "amount": amount.amount,
            "currency": amount.currency,
        }
        refund_id = derive_object_id(REFUND_PREFIX, "refund", idempotency_key)
        with self._store.locked():
            existing = self._store.load(refund_id)
            if existing is not None:
                _same_request_or_conflict(existing, request, idempotency_key)
                return _refund_result(existing)
            intent = self._load_intent(payment_intent_id)
            _check_refundable(intent, amount)
            refund = _new_refund(refund_id, request)
            intent["amount_refunded"] += amount.amount
            intent["refunds"].append(refund_id)
            self._store.save(refund)
            self._store.save(intent)
        return _refund_result(refund)

    def retrieve(self, payment_intent_id: str) -> PaymentResult:
        with self._store.locked():
            return _result(self._load_intent(payment_intent_id))

    # -- test and development hooks (not part of the PaymentProvider interface) ----------

    def complete_action(self, payment_intent_id: str, *, succeed: bool = True) -> PaymentResult:
        """Play the customer finishing (or failing) 3-D Secure on a ``requires_action``
        intent, as the Stripe stub's ``complete_action`` does; then post the webhook."""
        with self._store.locked():
            intent = self._load_intent(payment_intent_id)
            if intent["status"] != "requires_action":
                raise PaymentRejected(
                    f"PaymentIntent {payment_intent_id} is {intent['status']}, not requires_action",
                    code="payment_intent_unexpected_state",
                    http_status=400,
                )
            if succeed:
                intent.update(status="succeeded", amount_received=intent["amount"])
            else:
                intent.update(status="requires_payment_method", code=AUTHENTICATION_FAILURE)
                intent["decline_code"] = AUTHENTICATION_FAILURE
            self._store.save(intent)
        return _result(intent)

    def payment_intent(self, payment_intent_id: str) -> Record:
        """The intent as Stripe's API shows a PaymentIntent object (what its webhooks carry):
        amount, currency, status, ``metadata.order_id`` and, after a failure,
        ``last_payment_error``."""
        with self._store.locked():
            return _stripe_object(self._load_intent(payment_intent_id))

    def intents(self, order_id: str | None = None) -> list[PaymentResult]:
        """Every intent this provider's store knows, optionally for one order."""
        with self._store.locked():
            records = self._store.all(INTENT_PREFIX)
        return [
            _result(r) for r in records if order_id is None or r["metadata"]["order_id"] == order_id
        ]

    def refunds(self, payment_intent_id: str | None = None) -> list[RefundResult]:
        """Every refund in the store, optionally for one intent."""
        with self._store.locked():
            records = self._store.all(REFUND_PREFIX)
        return [
            _refund_result(r)
            for r in records
            if payment_intent_id is None or r["payment_intent"] == payment_intent_id
        ]

    def _load_intent(self, payment_intent_id: str) -> Record:
        intent = self._store.load(payment_intent_id)
        if intent is None or not payment_intent_id.startswith(INTENT_PREFIX):
            raise PaymentNotFound(
                f"No such payment_intent: {payment_intent_id!r}",
                code="resource_missing",
                http_status=404,
            )
        return intent


# -- record helpers ---------------------------------------------------------------------


def _charge_request(order_id: str, amount: Money, payment_method: str) -> Record:
    return {
        "order_id": order_id,
        "amount": amount.amount,
        "currency": amount.currency,
        "payment_method": payment_method,
    }


def _same_request_or_conflict(existing: Record, request: Record, idempotency_key: str) -> None:
    if existing["request"] != request:
        # The key itself is not secret, but it can be long; name its use, not its value.
        raise PaymentIdempotencyConflict(
            "Keys for idempotent requests can only be used with the same parameters they "
            "were first used with",
            code="idempotency_error",
            http_status=400,
        )


def _new_intent(intent_id: str, request: Record, outcome: CardOutcome) -> Record:
    succeeded = outcome.stripe_status == "succeeded"
    return {
        "id": intent_id,
        "object": "payment_intent",
        "request": request,
        "amount": request["amount"],
        "currency": request["currency"],
        "amount_received": request["amount"] if succeeded else 0,
        "amount_refunded": 0,
        "payment_method": request["payment_method"],
        "metadata": {"order_id": request["order_id"]},
        "status": outcome.stripe_status,
        "code": outcome.code,
        "decline_code": outcome.decline_code,
        "refunds": [],
        "created": int(time.time()),
        "first_answer": {
            "status": outcome.stripe_status,
            "decline_code": outcome.decline_code,
        },
    }


def _new_refund(refund_id: str, request: Record) -> Record:
    return {
        "id": refund_id,
        "object": "refund",
        "request": request,
        "payment_intent": request["payment_intent"],
        "amount": request["amount"],
        "currency": request["currency"],
        "metadata": {"order_id": request["order_id"]},
        "status": "succeeded",
        "created": int(time.time()),
    }


def _check_refundable(intent: Record, amount: Money) -> None:
    """Stripe's refund rules: only a succeeded payment, in its currency, never above
    what is left of the captured amount."""
    if intent["status"] != "succeeded":
        raise PaymentRejected(
            f"PaymentIntent {intent['id']} does not have a successful charge to refund",
            code="charge_not_refundable",
            http_status=400,
        )
    if amount.amount <= 0:
        raise PaymentRejected(
            "Invalid positive integer", code="parameter_invalid_integer", http_status=400
        )
    if amount.currency != intent["currency"]:
        raise PaymentRejected(
            f"Refund currency {amount.currency} differs from the charge's {intent['currency']}",
            code="currency_mismatch",
            http_status=400,
        )
    remaining = intent["amount_received"] - intent["amount_refunded"]
    if remaining <= 0:
        raise PaymentRejected(
            f"Charge for {intent['id']} has already been refunded",
            code="charge_already_refunded",
            http_status=400,
        )
    if amount.amount > remaining:
        raise PaymentRejected(
            f"Refund amount ({amount.amount}) is greater than unrefunded amount on charge "
            f"({remaining})",
            code="amount_too_large",
            http_status=400,
        )


def _stripe_object(intent: Record) -> Record:
    status = intent["status"]
    error: Record | None = None
    if status == "requires_payment_method" and intent.get("code") == AUTHENTICATION_FAILURE:
        error = {
            "type": "invalid_request_error",
            "code": AUTHENTICATION_FAILURE,
            "message": "The provided PaymentMethod has failed authentication.",
        }
    elif status == "requires_payment_method":
        error = {
            "type": "card_error",
            "code": intent.get("code"),
            "decline_code": intent.get("decline_code"),
            "message": "Your card was declined.",
        }
    return {
        "id": intent["id"],
        "object": "payment_intent",
        "amount": intent["amount"],
        "amount_received": intent["amount_received"],
        "currency": intent["currency"],
        "status": status,
        "metadata": dict(intent["metadata"]),
        "payment_method": None if error else intent["payment_method"],
        "last_payment_error": error,
        "next_action": {"type": "use_stripe_sdk"} if status == "requires_action" else None,
        "created": intent["created"],
        "livemode": False,
    }


def _result(intent: Record) -> PaymentResult:
    status = INTENT_STATUS_BY_STRIPE_STATUS[intent["status"]]
    return PaymentResult(
        intent_id=intent["id"],
        status=status,
        amount=Money(intent["amount"], intent["currency"]),
        decline_code=intent["decline_code"] if status is IntentStatus.DECLINED else None,
        order_id=intent["metadata"]["order_id"],
        provider_status=intent["status"],
    )


def _refund_result(refund: Record) -> RefundResult:
    return RefundResult(
        refund_id=refund["id"],
        amount=Money(refund["amount"], refund["currency"]),
        status=refund["status"],
        payment_intent_id=refund["payment_intent"],
    )
