"""Outgoing webhooks: endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.schemas.common import RequestBody, Rfc3339DateTime, with_examples
from orderflow.webhooks.models import WebhookDelivery, WebhookEndpoint

EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=40)]], Field(min_length=1, max_length=40)
]
Url = Annotated[str, Field(min_length=8, max_length=2000)]


class EndpointCreate(RequestBody):
    model_config = with_examples(
        {
            "url": "https://erp.example.com/hooks/orderflow",
            "event_types": ["order.*", "refund.succeeded"],
            "description": "ERP order sync",
        }
    )

    url: Url
    event_types: EventTypes
    description: Annotated[str, Field(max_length=500)] | None = None


class EndpointPatch(RequestBody):
    model_config = with_examples({"status": "paused"}, {"event_types": ["order.*"]})

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    status: Literal["enabled", "paused"] | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    status: str
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            status=endpoint.status,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class EndpointCreated(EndpointOut):
    #: Shown only here (and by rotate-secret).
    secret: str


class SecretOut(BaseModel):
    secret: str
    previous_secret_expires_at: datetime | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    replay: int
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        open_ = delivery.status in ("pending", "failed")
        return cls(
            id=delivery_public_id(delivery.id),
            event_id=delivery.event_id,
            status=delivery.status,
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            next_attempt_at=delivery.next_attempt_at if open_ else None,
            replay=delivery.replay,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
        )


class ReplayRequest(RequestBody):
    model_config = with_examples(
        {"since": "2026-03-14T00:00:00Z", "until": "2026-03-15T00:00:00Z", "types": ["order.*"]}
    )

    since: Rfc3339DateTime
    until: Rfc3339DateTime | None = None
    types: EventTypes | None = None


class ReplayOut(BaseModel):
    deliveries: int


def delivery_public_id(number: int) -> str:
    return f"whd_{number}"
