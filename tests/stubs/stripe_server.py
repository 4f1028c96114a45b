"""A stand-in for Stripe's REST API (v1), close enough for the official ``stripe`` SDK.

Speaks: form-encoded params with nested keys (``metadata[order_id]``,
``payment_method_types[0]``), Bearer (or Basic) auth with a 401 on a wrong key,
``Idempotency-Key`` replay (same key + same params: the saved status and body again with
``Idempotent-Replayed: true``; same key + other params: 400 ``idempotency_error``; only
results of requests that began executing are saved, validation errors are not), Stripe's
error shapes (402 ``card_error`` with ``decline_code`` and the ``payment_intent``), the
test PaymentMethod ids, PaymentIntents (create with ``confirm``, retrieve, confirm,
cancel), charges and refunds that never exceed what was captured.

Test hooks: fault injection (``fail_next``, ``hang_next``, ``set_mode`` from
:mod:`tests.stubs.base`), counting helpers (``succeeded_charges``, ``refunds``, ...),
``complete_action`` (the customer finishing 3-D Secure), and signed webhook events
(``signed_event``) in Stripe's ``t=…,v1=HMAC_SHA256(secret, f"{t}.{payload}")`` scheme.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from tests.stubs.base import INSTANT, Latency, StubRequest, StubResponse, StubServer

DEFAULT_API_KEY = "sk_test_orderflow_stub_0123456789"
API_VERSION = "2025-01-27.acacia"

# -- test payment methods ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestCard:
    """What confirming with a test PaymentMethod does at the stub."""

    __test__ = False  # not a pytest test class

    outcome: str  # "succeeded" | "declined" | "requires_action"
    brand: str = "visa"
    last4: str = "4242"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


def _decline(code: str, decline_code: str, message: str, last4: str) -> TestCard:
    return TestCard("declined", "visa", last4, code, decline_code, message)


_DECLINED = "Your card was declined."
TEST_CARDS: Mapping[str, TestCard] = {
    "pm_card_visa": TestCard("succeeded"),
    "pm_card_visa_debit": TestCard("succeeded", last4="5556"),
    "pm_card_mastercard": TestCard("succeeded", "mastercard", "4444"),
    "pm_card_amex": TestCard("succeeded", "amex", "8431"),
    "pm_card_chargeDeclined": _decline("card_declined", "generic_decline", _DECLINED, "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": _decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds.", "9995"
    ),
    "pm_card_chargeDeclinedLostCard": _decline("card_declined", "lost_card", _DECLINED, "9987"),
    "pm_card_chargeDeclinedStolenCard": _decline("card_declined", "stolen_card", _DECLINED, "9979"),
    "pm_card_chargeDeclinedFraudulent": _decline("card_declined", "fraudulent", _DECLINED, "0019"),
    "pm_card_chargeDeclinedExpiredCard": _decline(
        "expired_card", "expired_card", "Your card has expired.", "0069"
    ),
    "pm_card_chargeDeclinedIncorrectCvc": _decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "0127"
    ),
    "pm_card_chargeDeclinedProcessingError": _decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
        "0119",
    ),
    "pm_card_authenticationRequired": TestCard("requires_action", last4="3184"),
    "pm_card_threeDSecure2Required": TestCard("requires_action", last4="3220"),
}

MINIMUM_CHARGE: Mapping[str, int] = {
    "usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50,
}  # fmt: skip

# -- form decoding ----------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back into nested data: ``a[b]=1`` → ``{"a": {"b": "1"}}``,
    ``a[0]=x`` / ``a[]=x`` → ``{"a": ["x"]}``. Leaves stay strings, as on the wire."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, bracket, rest = key.partition("[")
        parts = [head, *_KEY_PART.findall(bracket + rest)]
        node = root
        for part in parts[:-1]:
            name = part or str(len(node))  # "a[]" appends
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child
        node[parts[-1] or str(len(node))] = value
    listified: dict[str, Any] = _listify(root)
    return listified


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# -- errors -----------------------------------------------------------------------------


class StripeApiError(Exception):
    """Raised inside the stub to answer a Stripe-shaped error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        save: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param
        self.error.update(extra or {})
        #: Saved for idempotent replay? Only errors raised once execution began (declines).
        self.save = save


def _not_found(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "").replace("_", "")[:24]


# -- webhook helpers (usable without a running stub) ------------------------------------


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's ``Stripe-Signature`` header for ``payload``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{t}.".encode() + payload
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def build_event(
    event_type: str,
    data_object: Mapping[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A Stripe Event envelope around ``data_object``."""
    return {
        "id": event_id or _new_id("evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": copy.deepcopy(dict(data_object))},
    }


def signed_event(
    event_type: str,
    data_object: Mapping[str, Any],
    secret: str,
    timestamp: int | None = None,
    *,
    event_id: str | None = None,
) -> tuple[bytes, str]:
    """``(payload_bytes, signature_header)`` ready to POST to our webhook endpoint."""
    event = build_event(event_type, data_object, event_id=event_id, created=timestamp)
    payload = json.dumps(event).encode()
    return payload, sign_payload(payload, secret, timestamp)


def fake_payment_intent(
    intent_id: str,
    *,
    amount: int,
    currency: str = "usd",
    status: str = "succeeded",
    order_id: str | None = None,
) -> dict[str, Any]:
    """A minimal PaymentIntent object for webhook tests against the local provider."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "metadata": {"order_id": order_id} if order_id else {},
        "livemode": False,
    }


# -- the stub ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Saved:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: bytes
    request_id: str


class StripeStub(StubServer):
    """See the module docstring. ``StripeStub(api_key=...)``; ``.url`` is the API base."""

    name = "stripe-stub"

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: Latency = INSTANT,
    ) -> None:
        super().__init__(host, port, latency)
        self.api_key = api_key
        self._intents: dict[str, dict[str, Any]] = {}
        self._charges: dict[str, dict[str, Any]] = {}
        self._refunds: dict[str, dict[str, Any]] = {}
        self._saved: dict[str, _Saved] = {}
        self._version = API_VERSION  # of the request being handled (under self.lock)
        self._captures: int | None = None  # see capture_amount

    def reset(self) -> None:
        """Forget all objects, saved idempotent results, recordings and faults."""
        with self.lock:
            self._intents.clear()
            self._charges.clear()
            self._refunds.clear()
            self._saved.clear()
            self._captures = None
        self.reset_requests()
        self.clear_faults()

    # -- inspection ---------------------------------------------------------------------

    def payment_intents(
        self, order_id: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(pi)
                for pi in self._intents.values()
                if (order_id is None or pi["metadata"].get("order_id") == order_id)
                and (status is None or pi["status"] == status)
            ]

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._intents[intent_id])

    def charges(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(ch)
                for ch in self._charges.values()
                if order_id is None or ch["metadata"].get("order_id") == order_id
            ]

    def charge_for_intent(self, intent_id: str) -> dict[str, Any]:
        with self.lock:
            charge_id = self._intents[intent_id]["latest_charge"]
            return copy.deepcopy(self._charges[charge_id])

    def succeeded_charges(self, order_id: str | None = None) -> list[dict[str, Any]]:
        """Successful charges (captured money), optionally for one ``metadata.order_id``:
        "exactly one successful charge per order" is ``len(...) == 1``."""
        return [ch for ch in self.charges(order_id) if ch["status"] == "succeeded"]

    def refunds(
        self, payment_intent: str | None = None, order_id: str | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(re)
                for re in self._refunds.values()
                if (payment_intent is None or re["payment_intent"] == payment_intent)
                and (order_id is None or re["metadata"].get("order_id") == order_id)
            ]

    def captured_amount(self, order_id: str | None = None) -> int:
        """Money captured and not refunded, in minor units (any currency summed)."""
        return sum(ch["amount_captured"] - ch["amount_refunded"] for ch in self.charges(order_id))

    # -- test hooks ---------------------------------------------------------------------

    def complete_action(self, intent_id: str, *, succeed: bool = True) -> dict[str, Any]:
        """The customer finished (or failed) 3-D Secure on a ``requires_action`` intent.
        Returns the updated PaymentIntent; send the matching webhook with
        :meth:`intent_event`."""
        with self.lock:
            intent = self._intents[intent_id]
            if intent["status"] != "requires_action":
                raise ValueError(f"{intent_id} is {intent['status']}, not requires_action")
            intent["next_action"] = None
            if succeed:
                self._succeed(intent)
            else:
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = {
                    "type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication.",
                    "payment_method": self._payment_method_object(intent["payment_method"]),
                }
                intent["payment_method"] = None
            return copy.deepcopy(intent)

    def capture_amount(self, amount: int | None) -> None:
        """From now on every successful payment captures ``amount`` (``amount_received``)
        whatever the intent asked for: a provider-side fault no Stripe test card makes, for
        proving that a wrong capture is refunded, never kept. ``None`` restores the truth."""
        with self.lock:
            self._captures = amount

    def signed_event(
        self,
        event_type: str,
        data_object: Mapping[str, Any],
        secret: str,
        timestamp: int | None = None,
        *,
        event_id: str | None = None,
    ) -> tuple[bytes, str]:
        return signed_event(event_type, data_object, secret, timestamp, event_id=event_id)

    def intent_event(
        self,
        event_type: str,
        intent_id: str,
        secret: str,
        timestamp: int | None = None,
        *,
        event_id: str | None = None,
    ) -> tuple[bytes, str]:
        """A signed event about a stored intent; ``charge.*`` events carry its charge."""
        if event_type.startswith("charge."):
            data_object = self.charge_for_intent(intent_id)
        else:
            data_object = self.payment_intent(intent_id)
        return signed_event(event_type, data_object, secret, timestamp, event_id=event_id)

    # -- HTTP -----------------------------------------------------------------------------

    def fault_body(self, status: int) -> StubResponse:
        if status == 429:
            error: dict[str, Any] = {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
            }
        elif status == 409:
            error = {
                "type": "idempotency_error",
                "code": "idempotency_key_in_use",
                "message": "There is currently another in-progress request using this "
                "Idempotent Key (that probably means you submitted twice, and the other "
                "request is still going through). Please retry your request.",
            }
        elif status >= 500:
            error = {"type": "api_error", "message": "An unknown error occurred"}
        else:
            error = {"type": "invalid_request_error", "message": f"Injected HTTP {status}"}
        return StubResponse.json(
            status, {"error": error}, {"Request-Id": _new_id("req_")}, {"injected": True}
        )

    def handle(self, request: StubRequest) -> StubResponse:
        request_id = _new_id("req_")
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if not self._authorized(request):
            return StubResponse.json(
                401,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Invalid API Key provided.",
                    }
                },
                {**headers, "WWW-Authenticate": 'Basic realm="Stripe"'},
                {"authorized": False},
            )
        params = self._params(request)
        key = request.header("Idempotency-Key")
        if key:
            headers["Idempotency-Key"] = key
        note: dict[str, Any] = {"authorized": True, "params": params}
        with self.lock:
            self._version = request.header("Stripe-Version") or API_VERSION
            if request.method == "POST" and key:
                replay = self._replay(key, request, params, headers, note)
                if replay is not None:
                    return replay
            status, payload, save = self._route(request.method, request.path, params)
            body = json.dumps(payload).encode()
            if request.method == "POST" and key and save:
                self._saved[key] = _Saved(
                    request.method, request.path, params, status, body, request_id
                )
        note["object_id"] = payload.get("id") if isinstance(payload, dict) else None
        return StubResponse(status, body, {"Content-Type": "application/json", **headers}, note)

    def _authorized(self, request: StubRequest) -> bool:
        value = request.header("Authorization") or ""
        scheme, _, credential = value.partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(credential.strip(), self.api_key)
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(credential).decode().partition(":")[0]
            except ValueError:
                return False
            return hmac.compare_digest(user, self.api_key)
        return False

    @staticmethod
    def _params(request: StubRequest) -> dict[str, Any]:
        if request.method == "POST":
            pairs = parse_qsl(request.body.decode(), keep_blank_values=True)
        else:
            pairs = request.query
        return decode_form(pairs)

    def _replay(
        self,
        key: str,
        request: StubRequest,
        params: dict[str, Any],
        headers: dict[str, str],
        note: dict[str, Any],
    ) -> StubResponse | None:
        saved = self._saved.get(key)
        if saved is None:
            return None
        if (saved.method, saved.path, saved.params) != (request.method, request.path, params):
            error = StripeApiError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            )
            note["idempotency_conflict"] = True
            return StubResponse.json(400, {"error": error.error}, headers, note)
        note["replayed"] = True
        return StubResponse(
            saved.status,
            saved.body,
            {
                "Content-Type": "application/json",
                **headers,
                "Idempotent-Replayed": "true",
                "Original-Request": saved.request_id,
            },
            note,
        )

    def _route(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, body, save-for-idempotency)."""
        try:
            return 200, self._dispatch_route(method, path, params), True
        except StripeApiError as exc:
            return exc.status, {"error": exc.error}, exc.save

    def _dispatch_route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        parts = [p for p in path.split("/") if p]
        match (method, parts):
            case ("POST", ["v1", "payment_intents"]):
                return self._create_intent(params)
            case ("GET", ["v1", "payment_intents", intent_id]):
                return copy.deepcopy(self._intent(intent_id))
            case ("POST", ["v1", "payment_intents", intent_id, "confirm"]):
                return self._confirm(self._intent(intent_id), params)
            case ("POST", ["v1", "payment_intents", intent_id, "cancel"]):
                return self._cancel(self._intent(intent_id))
            case ("GET", ["v1", "charges", charge_id]):
                if charge_id not in self._charges:
                    raise _not_found("charge", charge_id)
                return copy.deepcopy(self._charges[charge_id])
            case ("POST", ["v1", "refunds"]):
                return self._create_refund(params)
            case ("GET", ["v1", "refunds", refund_id]):
                if refund_id not in self._refunds:
                    raise _not_found("refund", refund_id)
                return copy.deepcopy(self._refunds[refund_id])
        raise StripeApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    # -- payment intents ----------------------------------------------------------------

    def _intent(self, intent_id: str) -> dict[str, Any]:
        intent = self._intents.get(intent_id)
        if intent is None:
            raise _not_found("payment_intent", intent_id, "intent")
        return intent

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _positive_int(params, "amount")
        currency = _currency(params)
        minimum = MINIMUM_CHARGE.get(currency, 1)
        if amount < minimum:
            raise StripeApiError(
                400,
                f"Amount must be at least {minimum} {currency} minor units",
                code="amount_too_small",
                param="amount",
            )
        types, automatic = _payment_method_config(params, self._version)
        confirm = _bool(params.get("confirm"))
        payment_method = params.get("payment_method") or None
        if payment_method is not None:
            self._test_card(payment_method)
        if confirm:
            _check_confirmable(automatic, params, payment_method)
        intent_id = _new_id("pi_")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": automatic,
            "capture_method": params.get("capture_method", "automatic"),
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "next_action": None,
            "payment_method": payment_method,
            "payment_method_types": types,
            "status": "requires_confirmation" if payment_method else "requires_payment_method",
        }
        self._intents[intent_id] = intent
        if confirm:
            return self._confirm(intent, {})
        return copy.deepcopy(intent)

    def _confirm(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] not in (
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
        ):
            raise StripeApiError(
                400,
                f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": copy.deepcopy(intent)},
            )
        if params.get("payment_method"):
            self._test_card(params["payment_method"])
            intent["payment_method"] = params["payment_method"]
        if not intent["payment_method"]:
            raise StripeApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        card = self._test_card(intent["payment_method"])
        intent["last_payment_error"] = None
        if card.outcome == "succeeded":
            self._succeed(intent)
        elif card.outcome == "requires_action":
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect", "source": _new_id("src_")},
            }
        else:
            self._decline(intent, card)  # raises the 402
        return copy.deepcopy(intent)

    def _cancel(self, intent: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] in ("succeeded", "canceled", "processing"):
            raise StripeApiError(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(status="canceled", canceled_at=int(time.time()), next_action=None)
        return copy.deepcopy(intent)

    def _succeed(self, intent: dict[str, Any]) -> None:
        charge = self._new_charge(intent, succeeded=True)
        if self._captures is not None:
            charge["amount_captured"] = self._captures
        intent.update(
            status="succeeded",
            amount_received=charge["amount_captured"],
            latest_charge=charge["id"],
            next_action=None,
        )

    def _decline(self, intent: dict[str, Any], card: TestCard) -> None:
        charge = self._new_charge(intent, succeeded=False, card=card)
        error = {
            "type": "card_error",
            "code": card.code,
            "decline_code": card.decline_code,
            "message": card.message,
            "charge": charge["id"],
            "doc_url": f"https://stripe.com/docs/error-codes/{(card.code or '').replace('_', '-')}",
            "payment_method": self._payment_method_object(intent["payment_method"]),
        }
        intent.update(
            status="requires_payment_method",
            last_payment_error=error,
            latest_charge=charge["id"],
            payment_method=None,
        )
        raise StripeApiError(
            402,
            card.message or _DECLINED,
            type="card_error",
            code=card.code,
            extra={
                "decline_code": card.decline_code,
                "charge": charge["id"],
                "payment_intent": copy.deepcopy(intent),
                "payment_method": error["payment_method"],
                "request_log_url": "https://dashboard.stripe.com/test/logs",
            },
            save=True,  # a decline happened: replays must repeat it, not charge again
        )

    def _new_charge(
        self, intent: dict[str, Any], *, succeeded: bool, card: TestCard | None = None
    ) -> dict[str, Any]:
        charge = {
            "id": _new_id("ch_"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "captured": succeeded,
            "created": int(time.time()),
            "currency": intent["currency"],
            "failure_code": None if succeeded or card is None else card.code,
            "failure_message": None if succeeded or card is None else card.message,
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "outcome": {"type": "authorized" if succeeded else "issuer_declined"},
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "refunded": False,
            "status": "succeeded" if succeeded else "failed",
        }
        self._charges[charge["id"]] = charge
        return charge

    def _test_card(self, payment_method: str) -> TestCard:
        card = TEST_CARDS.get(payment_method)
        if card is None:
            raise StripeApiError(
                400,
                f"No such PaymentMethod: '{payment_method}'",
                code="resource_missing",
                param="payment_method",
            )
        return card

    @staticmethod
    def _payment_method_object(payment_method: str | None) -> dict[str, Any] | None:
        card = TEST_CARDS.get(payment_method or "")
        if payment_method is None or card is None:
            return None
        return {
            "id": payment_method,
            "object": "payment_method",
            "type": "card",
            "card": {"brand": card.brand, "last4": card.last4},
        }

    # -- refunds --------------------------------------------------------------------------

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        charge = self._refundable_charge(params)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        amount = _positive_int(params, "amount") if "amount" in params else remaining
        if remaining <= 0:
            raise StripeApiError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        if amount > remaining:
            raise StripeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": _new_id("re_"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": dict(params.get("metadata") or {}),
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self._refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        return copy.deepcopy(refund)

    def _refundable_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("charge"):
            charge = self._charges.get(params["charge"])
            if charge is None:
                raise _not_found("charge", params["charge"], "charge")
        elif params.get("payment_intent"):
            intent = self._intents.get(params["payment_intent"])
            if intent is None:
                raise _not_found("payment_intent", params["payment_intent"], "payment_intent")
            charge = self._charges.get(intent["latest_charge"] or "")
            if intent["status"] != "succeeded" or charge is None:
                raise StripeApiError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge "
                    "to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
        else:
            raise StripeApiError(
                400,
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        if charge["status"] != "succeeded":
            raise StripeApiError(
                400, f"Charge {charge['id']} has not succeeded.", code="charge_not_refundable"
            )
        return charge


# -- parameter helpers ------------------------------------------------------------------


def _positive_int(params: Mapping[str, Any], name: str) -> int:
    raw = params.get(name)
    if raw is None:
        raise StripeApiError(
            400, f"Missing required param: {name}.", code="parameter_missing", param=name
        )
    if not isinstance(raw, str) or not raw.isdigit() or int(raw) <= 0:
        raise StripeApiError(
            400, "Invalid positive integer", code="parameter_invalid_integer", param=name
        )
    return int(raw)


def _currency(params: Mapping[str, Any]) -> str:
    raw = params.get("currency")
    if raw is None:
        raise StripeApiError(
            400, "Missing required param: currency.", code="parameter_missing", param="currency"
        )
    if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z]{3}", raw):
        raise StripeApiError(
            400, f"Invalid currency: {raw}.", code="parameter_invalid_string", param="currency"
        )
    return raw.lower()


def _bool(raw: Any) -> bool:
    if raw is None:
        return False
    if raw in ("true", "false"):
        return bool(raw == "true")
    raise StripeApiError(400, f"Invalid boolean: {raw}", code="parameter_invalid_boolean")


#: From this API version on, ``payment_method_types`` is no longer writable (changelog
#: "Removes the payment method types parameter from Payment Intents", 2026-09-30.endive).
PAYMENT_METHOD_TYPES_REMOVED = "2026-09-30"
#: ``allowed_payment_method_types`` exists from 2026-07-29.dahlia on.
ALLOWED_PAYMENT_METHOD_TYPES_ADDED = "2026-07-29"
_EXCLUSIVE = (
    "payment_method_types",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
    "automatic_payment_methods",
)


def _payment_method_config(
    params: Mapping[str, Any], version: str
) -> tuple[list[str], dict[str, Any] | None]:
    """(payment_method_types, automatic_payment_methods) as Stripe resolves them for the
    request's ``Stripe-Version``. With no explicit types, automatic payment methods are on
    (since 2023-08-16), redirects allowed unless ``allow_redirects=never``."""
    given = [name for name in _EXCLUSIVE if params.get(name) is not None]
    if len(given) > 1:
        raise StripeApiError(
            400,
            f"You may only specify one of these parameters: {', '.join(given)}.",
            code="parameter_unknown",
        )
    date = version[:10]
    if "payment_method_types" in given and date >= PAYMENT_METHOD_TYPES_REMOVED:
        raise StripeApiError(
            400,
            "payment_method_types is no longer supported as a parameter on this API version. "
            "Use automatic_payment_methods, allowed_payment_method_types or "
            "excluded_payment_method_types instead.",
            code="payment_method_types_no_longer_supported",
            param="payment_method_types",
        )
    if "allowed_payment_method_types" in given and date < ALLOWED_PAYMENT_METHOD_TYPES_ADDED:
        raise StripeApiError(
            400,
            "Received unknown parameter: allowed_payment_method_types",
            code="parameter_unknown",
            param="allowed_payment_method_types",
        )
    for name in ("payment_method_types", "allowed_payment_method_types"):
        if name in given:
            types = params[name]
            if not isinstance(types, list) or not types:
                raise StripeApiError(
                    400, "Invalid array", code="parameter_invalid_array", param=name
                )
            return list(types), None
    automatic = params.get("automatic_payment_methods") or {}
    if automatic and not _bool(automatic.get("enabled")):
        return ["card"], None
    return ["card"], {
        "enabled": True,
        "allow_redirects": automatic.get("allow_redirects", "always"),
    }


def _check_confirmable(
    automatic: dict[str, Any] | None, params: Mapping[str, Any], payment_method: str | None
) -> None:
    if payment_method is None:
        raise StripeApiError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "To confirm the PaymentIntent, pass a payment_method.",
            code="payment_intent_unexpected_state",
        )
    if automatic and automatic["allow_redirects"] != "never" and not params.get("return_url"):
        raise StripeApiError(
            400,
            "This PaymentIntent is configured to accept payment methods enabled in your "
            "Dashboard. Because some of these payment methods might redirect your customer "
            "off of your page, you must provide a `return_url`. If you don't want to accept "
            "redirect-based payment methods, set `automatic_payment_methods[enabled]` to "
            "`true` and `automatic_payment_methods[allow_redirects]` to `never` when creating "
            "Setup Intents and Payment Intents.",
            param="return_url",
        )
