"""Shipping labels and tracking: one small interface (``provider``), a local implementation
and a Shippo one. Use :func:`shipping_provider_from_settings`; the Shippo SDK is imported
only when Shippo is chosen."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from orderflow.shipping.local import LocalCarrier, LocalShippingProvider
from orderflow.shipping.provider import (
    Label,
    LabelRequest,
    Quote,
    ShippingError,
    ShippingProvider,
    ShippingProviderUnavailable,
    ShippingRejected,
    TrackingReport,
)

if TYPE_CHECKING:
    from orderflow.settings import Settings

__all__ = [
    "Label",
    "LabelRequest",
    "LocalCarrier",
    "LocalShippingProvider",
    "Quote",
    "ShippingError",
    "ShippingProvider",
    "ShippingProviderUnavailable",
    "ShippingRejected",
    "TrackingReport",
    "shipping_provider_from_settings",
]


def shipping_provider_from_settings(
    settings: Settings, *, timeout: float | None = None
) -> ShippingProvider:
    if settings.shipping_provider == "shippo":
        from orderflow.shipping.shippo_provider import ShippoShippingProvider

        if settings.shippo_api_key is None:  # Settings refuses this already; be explicit
            raise ValueError("ORDERFLOW_SHIPPO_API_KEY is required for the shippo provider")
        return ShippoShippingProvider(
            settings.shippo_api_key.get_secret_value(),
            address_from=settings.ship_from_address,
            api_base=settings.shippo_api_base,
            timeout=10.0 if timeout is None else timeout,
        )
    return LocalShippingProvider(
        LocalCarrier(settings.carrier_dir, timedelta(seconds=settings.local_carrier_step_seconds))
    )
