"""The shipping provider interface: what a label purchase needs and gives, and the errors
it may raise. Implementations: ``local`` (a generated PDF and tracking number) and ``shippo``
(Shippo's official SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orderflow.statuses import ShipmentStatus


class ShippingError(Exception):
    """Base of what a provider raises."""


class ShippingProviderUnavailable(ShippingError):
    """The provider could not be reached or answered 5xx/429: retry later with the same
    shipment (the purchase looks up what a lost answer bought before buying again)."""


class ShippingRejected(ShippingError):
    """The provider refused the request (bad address, no rate): retrying will not help."""


@dataclass(frozen=True)
class LabelRequest:
    """One of our shipments, as the provider needs it."""

    shipment_id: str
    order_id: str
    address_to: dict[str, Any]
    units: int
    carrier: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class Quote:
    """The provider's shipment and the rate chosen for it, kept before buying."""

    provider_shipment_id: str
    rate_id: str
    carrier: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class Label:
    provider_label_id: str
    carrier: str
    service: str | None
    tracking_number: str
    tracking_url: str | None
    #: Where the provider serves the label; None when the PDF is here (``pdf``).
    label_url: str | None
    pdf: bytes | None


@dataclass(frozen=True)
class TrackingReport:
    status: ShipmentStatus
    occurred_at: datetime
    location: str | None
    description: str | None


class ShippingProvider(Protocol):
    name: str

    def quote(self, request: LabelRequest) -> Quote:
        """Create the shipment at the provider and choose its rate (no money moves)."""
        ...

    def buy(self, request: LabelRequest, quote: Quote) -> Label:
        """Buy the label for ``quote``: once per quote whatever the retries. A label already
        bought for that rate (an answer lost to a timeout or a crash) is found and
        returned, never bought again."""
        ...

    def void(self, label: Label | str) -> None:
        """Give back a label (by the provider's id) that will not be used."""
        ...

    def track(self, carrier: str, tracking_number: str) -> list[TrackingReport]:
        """The tracking history as the provider knows it now, oldest first."""
        ...
