from __future__ import annotations

import time
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Header, Request

from api.deps import SessionDep, SettingsDep
from api.schemas.common import problem_responses
from orderflow.errors import BadRequest
from orderflow.fulfilment.webhooks import ProviderEvent, handle_payment_event
from orderflow.settings import Settings

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

#: Stripe's default tolerance; a signature older, or this far in the future, is refused.
TOLERANCE_SECONDS = 300


def verify_stripe_event(payload: bytes, signature: str, settings: Settings) -> ProviderEvent:
    """Check the ``Stripe-Signature`` header with the SDK, and refuse timestamps from the
    future, which the SDK's tolerance check lets through."""
    if settings.stripe_webhook_secret is None:
        raise BadRequest("webhooks are not configured: set ORDERFLOW_STRIPE_WEBHOOK_SECRET")
    try:
        event = stripe.Webhook.construct_event(
            payload,
            signature,
            settings.stripe_webhook_secret.get_secret_value(),
            tolerance=TOLERANCE_SECONDS,
        )
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise BadRequest(f"invalid webhook: {type(error).__name__}") from error
    stamp = dict(part.split("=", 1) for part in signature.split(",") if "=" in part).get("t", "0")
    if not stamp.isdigit() or int(stamp) > time.time() + TOLERANCE_SECONDS:
        raise BadRequest("invalid webhook: timestamp outside the tolerance")
    data: dict[str, Any] = event.to_dict() if hasattr(event, "to_dict") else dict(event)
    try:
        return ProviderEvent(str(data["id"]), str(data["type"]), dict(data["data"]["object"]))
    except (KeyError, TypeError) as error:
        raise BadRequest("invalid webhook: not a Stripe event") from error


@router.post("/stripe", responses=problem_responses(400, 413))
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str, Header(alias="Stripe-Signature", max_length=2000)] = "",
) -> dict[str, str]:
    event = verify_stripe_event(await request.body(), stripe_signature, settings)
    return {"received": event.id, "outcome": handle_payment_event(session, event)}
