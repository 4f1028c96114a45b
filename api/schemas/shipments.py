from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from api.schemas.common import NON_BLANK, RequestBody, Rfc3339DateTime, WholeNumber
from orderflow.models import Shipment
from orderflow.statuses import ShipmentStatus

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=NON_BLANK)]
Url = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://\S+$")]


class ShipmentLineIn(RequestBody):
    product_id: Annotated[str, Field(min_length=1, max_length=40)]
    quantity: Annotated[int, Field(ge=1, le=1000, strict=True), WholeNumber]


class ShipmentCreate(RequestBody):
    """``lines`` omitted: every unit of the order not yet in a shipment."""

    lines: Annotated[list[ShipmentLineIn], Field(min_length=1, max_length=100)] | None = None
    carrier: Code | None = None
    service: Code | None = None
    tracking_number: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=NON_BLANK)] | None
    ) = None
    tracking_url: Url | None = None
    buy_label: bool = False


def _text_only(value: object) -> object:
    """In a JSON body a date-time is a string (pydantic would read 0 as the epoch)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string such as 2026-01-31T12:00:00Z")
    return value


class TrackingEventIn(RequestBody):
    status: ShipmentStatus
    occurred_at: Annotated[Rfc3339DateTime, BeforeValidator(_text_only)]
    location: Annotated[str, Field(max_length=200)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class ShipmentLineOut(BaseModel):
    product_id: str
    sku: str
    quantity: int


class TrackingEventOut(BaseModel):
    status: ShipmentStatus
    occurred_at: datetime
    location: str | None
    description: str | None


class ShipmentOut(BaseModel):
    id: str
    order_id: str
    status: ShipmentStatus
    carrier: str | None
    service: str | None
    tracking_number: str | None
    tracking_url: str | None
    label_url: str | None
    label_status: str
    lines: list[ShipmentLineOut]
    events: list[TrackingEventOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, shipment: Shipment) -> ShipmentOut:
        return cls(
            id=shipment.id,
            order_id=shipment.order_id,
            status=ShipmentStatus(shipment.status),
            carrier=shipment.carrier,
            service=shipment.service,
            tracking_number=shipment.tracking_number,
            tracking_url=shipment.tracking_url,
            label_url=shipment.label_url,
            label_status=str(shipment.label_status),
            lines=[
                ShipmentLineOut(product_id=line.product_id, sku=line.sku, quantity=line.quantity)
                for line in shipment.lines
            ],
            events=[
                TrackingEventOut(
                    status=ShipmentStatus(event.status),
                    occurred_at=event.occurred_at,
                    location=event.location,
                    description=event.description,
                )
                for event in shipment.events
            ],
            created_at=shipment.created_at,
            updated_at=shipment.updated_at,
        )
