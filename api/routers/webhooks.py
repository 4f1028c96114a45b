from __future__ import annotations

import hmac
import time
from typing import Annotated, Any, TypeVar

import stripe
from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api import examples as ex
from api.deps import SessionDep, SettingsDep
from api.schemas.common import (
    Currency,
    is_storable_text,
    json_answer,
    problem_example,
    problem_responses,
)
from api.webhook_payloads import webhook_object
from orderflow.errors import BadRequest, NotAuthenticated
from orderflow.fulfilment.tracking import schedule_tracking
from orderflow.fulfilment.webhooks import ProviderEvent, handle_payment_event
from orderflow.settings import Settings

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

#: Stripe's default tolerance; a signature older, or this far in the future, is refused.
TOLERANCE_SECONDS = 300


def verify_stripe_event(payload: bytes, signature: str, settings: Settings) -> ProviderEvent:
    """Check the ``Stripe-Signature`` header with the SDK, refuse timestamps from the future,
    which the SDK's tolerance check lets through, then read the body with the webhook guard
    and check the fields the handler uses. (``stripe.Webhook.construct_event`` would parse
    the body itself, unguarded: ``[]`` failed in it with AttributeError, deep nesting with
    RecursionError.)"""
    if settings.stripe_webhook_secret is None:
        raise BadRequest("webhooks are not configured: set ORDERFLOW_STRIPE_WEBHOOK_SECRET")
    try:
        stripe.WebhookSignature.verify_header(
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
    data = webhook_object(payload)
    event = _checked(_Event, data)
    found = ProviderEvent(event.id, event.type, event.data.object)
    shape = _OBJECT_SHAPES.get(found.type)
    if shape is not None:
        _checked(shape, found.object, within="data.object")
    return found


# What the handler reads of an event, with the limits of the columns it lands in: a signed
# event that does not fit is a bad payload (400), not a database error (500).
ProviderId = Annotated[str, Field(min_length=1, max_length=255)]
ShortCode = Annotated[str, Field(max_length=64)]
MinorUnits = Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]  # a BIGINT column


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="allow")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if isinstance(value, str) and not is_storable_text(value):
            raise ValueError("holds NUL characters or unpaired surrogates")
        return value


class _EventData(_Inbound):
    object: dict[str, Any]


class _Event(_Inbound):
    id: ProviderId
    type: ShortCode
    data: _EventData


class _Metadata(_Inbound):
    order_id: Annotated[str, Field(max_length=40)] | None = None
    refund_id: Annotated[str, Field(max_length=40)] | None = None


class _PaymentError(_Inbound):
    code: ShortCode | None = None
    decline_code: ShortCode | None = None


class _Intent(_Inbound):
    id: ProviderId
    amount: MinorUnits
    amount_received: MinorUnits | None = None
    currency: Currency
    metadata: _Metadata | None = None
    last_payment_error: _PaymentError | None = None


class _Refund(_Inbound):
    id: ProviderId
    amount: MinorUnits
    currency: Currency
    status: ShortCode | None = None
    metadata: _Metadata | None = None
    failure_reason: ShortCode | None = None


class _RefundOfIntent(_Refund):
    payment_intent: ProviderId


class _Refunds(_Inbound):
    data: list[_Refund] = []


class _Charge(_Inbound):
    payment_intent: ProviderId
    amount_refunded: MinorUnits
    currency: Currency
    metadata: _Metadata | None = None
    refunds: _Refunds | None = None


_OBJECT_SHAPES: dict[str, type[_Inbound]] = {
    "payment_intent.succeeded": _Intent,
    "payment_intent.payment_failed": _Intent,
    "charge.refunded": _Charge,
    "refund.updated": _RefundOfIntent,
    "refund.failed": _RefundOfIntent,
}


M = TypeVar("M", bound=_Inbound)


def _checked(shape: type[M], data: dict[str, Any], *, within: str = "") -> M:
    try:
        return shape.model_validate(data)
    except ValidationError as error:
        where = ".".join([within, *(str(part) for part in error.errors()[0]["loc"])])
        raise BadRequest(f"invalid webhook: unexpected {where.strip('.') or 'payload'}") from None


@router.post(
    "/stripe",
    summary="Receive a Stripe event",
    description=(
        "Stripe's webhook endpoint. The `Stripe-Signature` header is checked against "
        "`ORDERFLOW_STRIPE_WEBHOOK_SECRET` (HMAC-SHA256 of `<timestamp>.<body>`, at most 300 s "
        "old or ahead); an event that fails the check changes nothing (400). Applied: "
        "`payment_intent.succeeded` (confirms the order), `payment_intent.payment_failed` "
        "(fails it, stock given back), `charge.refunded`; other types are acknowledged and "
        "ignored. The order is found by the intent id, then by `metadata.order_id`. A signed "
        "event is still only a claim: it changes an order only when it is about the order's "
        "own recorded PaymentIntent and, for a success, the amount received and currency "
        "equal the charge; an intent not recorded yet answers `verifying` (the charge step "
        "asks the provider), a mismatch `anomaly` (a `payment_anomaly` event, nothing else "
        "changes). Each event id is handled once: a redelivery answers `duplicate`."
    ),
    responses={
        200: {
            "description": "Received: `outcome` is `applied`, `verifying`, `anomaly`, "
            "`duplicate` or `ignored`",
            "content": {
                "application/json": {
                    "examples": {
                        "applied": {
                            "value": {"received": ex.STRIPE_EVENT["id"], "outcome": "applied"}
                        },
                        "duplicate": {
                            "value": {"received": ex.STRIPE_EVENT["id"], "outcome": "duplicate"}
                        },
                    }
                }
            },
        },
        **problem_responses(
            400,
            413,
            examples={
                400: {
                    "bad-signature": problem_example(
                        400,
                        "bad-request",
                        "Bad request",
                        "invalid webhook: SignatureVerificationError",
                    ),
                    "stale": problem_example(
                        400,
                        "bad-request",
                        "Bad request",
                        "invalid webhook: timestamp outside the tolerance",
                    ),
                }
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "description": "A Stripe Event object"},
                    "example": ex.STRIPE_EVENT,
                }
            },
        }
    },
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str, Header(alias="Stripe-Signature", max_length=2000)] = "",
) -> dict[str, str]:
    event = verify_stripe_event(await request.body(), stripe_signature, settings)
    # Off the event loop: applying the event may wait on the order's row lock, held by a
    # worker, and the loop must go on serving every other request meanwhile.
    outcome = await run_in_threadpool(handle_payment_event, session, event)
    return {"received": event.id, "outcome": outcome}


class _ShippoTrack(_Inbound):
    carrier: Annotated[str, Field(min_length=1, max_length=64)]
    tracking_number: Annotated[str, Field(min_length=1, max_length=128)]


class _ShippoEvent(_Inbound):
    event: Annotated[str, Field(max_length=64)]
    data: dict[str, Any] = Field(default_factory=dict)


@router.post(
    "/shippo",
    summary="Shippo tracking updates",
    description=(
        "Shippo's `track_updated` webhook, registered with a secret token in its URL "
        "(`?token=`, `ORDERFLOW_SHIPPO_WEBHOOK_TOKEN`); 401 without it. The body only names "
        "the parcel: its tracking history is read back from Shippo in the background. Other "
        "events are acknowledged and ignored."
    ),
    responses={
        **json_answer(
            200,
            "Received; how many shipments will have their tracking read back",
            scheduled={"received": "track_updated", "scheduled": 1},
        ),
        **problem_responses(400, 401, 413),
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "examples": {"track-updated": {"value": ex.SHIPPO_TRACK_UPDATED}},
                }
            }
        }
    },
)
async def shippo_webhook(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Query(max_length=200)] = "",
) -> dict[str, Any]:
    """Shippo's ``track_updated``, authenticated by the secret token in the URL it was
    registered with (Shippo signs nothing), compared in constant time. The body only says
    which parcel changed: the tracking history is read back from Shippo in a pipeline step,
    so the answer is fast and a forged body can move nothing."""
    expected = settings.shippo_webhook_token
    if expected is None or not hmac.compare_digest(
        token.encode(), expected.get_secret_value().encode()
    ):
        raise NotAuthenticated("invalid webhook token")
    event = _checked(_ShippoEvent, webhook_object(await request.body()))
    if event.event != "track_updated":
        return {"received": event.event, "scheduled": 0}
    track = _checked(_ShippoTrack, event.data, within="data")
    scheduled = await run_in_threadpool(
        schedule_tracking, session, track.carrier, track.tracking_number
    )
    return {"received": event.event, "scheduled": scheduled}
