"""The customer's part of 3-D Secure, played locally: with the local payment provider an
intent that ``requires_action`` waits for someone to authenticate it, as a real card holder
would on their bank's page. ``settle`` moves the local intent to its outcome (so ``retrieve``
agrees) and ``signed_event`` builds the webhook Stripe would then send, signed exactly as
Stripe signs (``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>">``
keyed by the endpoint's secret), for the API's real webhook route to verify and apply.

The event id is derived from the intent and the outcome, so sending the same outcome again
is a duplicate delivery, which the webhook route acknowledges and ignores."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from orderflow.payments.local import AUTHENTICATION_FAILURE, LocalPaymentProvider
from orderflow.payments.provider import PaymentRejected

#: The webhook event type each outcome produces.
EVENT_TYPES = {True: "payment_intent.succeeded", False: "payment_intent.payment_failed"}
#: The Stripe API version the events are shaped after.
API_VERSION = "2024-06-20"
#: Stripe statuses an intent rests in after a successful or a failed authentication.
_SETTLED_STATUS = {True: "succeeded", False: "requires_payment_method"}


def settle(provider: LocalPaymentProvider, intent_id: str, *, succeed: bool) -> dict[str, Any]:
    """Authenticate (``succeed``) or fail the intent; answer the intent as Stripe shows it.
    Asking again for the outcome it already has changes nothing (so a webhook that was lost
    can be sent again); an intent that ended the other way, or never needed the customer,
    raises ``PaymentRejected``."""
    intent = provider.payment_intent(intent_id)
    if intent["status"] == "requires_action":
        provider.complete_action(intent_id, succeed=succeed)
        return provider.payment_intent(intent_id)
    already = intent["status"] == _SETTLED_STATUS[succeed]
    if already and (succeed or intent["last_payment_error"]["code"] == AUTHENTICATION_FAILURE):
        return intent
    raise PaymentRejected(
        f"PaymentIntent {intent_id} is {intent['status']}: there is nothing for the "
        "customer to authenticate",
        code="payment_intent_unexpected_state",
        http_status=400,
    )


def event_for(intent: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The Stripe event announcing the intent's outcome."""
    event_type = EVENT_TYPES[intent["status"] == "succeeded"]
    digest = hashlib.sha256(f"{intent['id']}\x00{event_type}".encode()).hexdigest()
    return {
        "id": f"evt_local_{digest[:24]}",
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": intent},
    }


def stripe_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload``."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_event(intent: dict[str, Any], secret: str) -> tuple[dict[str, Any], bytes, str]:
    """``(event, payload, Stripe-Signature header)`` for the intent's outcome, signed now."""
    now = int(time.time())
    event = event_for(intent, created=now)
    payload = json.dumps(event, separators=(",", ":")).encode()
    return event, payload, stripe_signature(payload, secret, now)
