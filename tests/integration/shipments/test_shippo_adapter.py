"""The Shippo adapter through the official SDK against the wire-level stand-in: a label per
quote whatever the faults, tracking read back as our statuses."""

from __future__ import annotations

import pytest

from orderflow.shipping import LabelRequest, ShippingProviderUnavailable, ShippingRejected
from orderflow.shipping.shippo_provider import ShippoShippingProvider
from orderflow.statuses import ShipmentStatus
from tests.stubs import ADAPTER_TEST_TIMEOUT
from tests.stubs.shippo_server import ShippoStub

FROM = {"name": "Warehouse", "street1": "1 Way", "city": "SF", "state": "CA", "zip": "94107",
        "country": "US"}  # fmt: skip
TO = {"name": "Jane Doe", "line1": "123 Main St", "line2": None, "city": "New York",
      "state": "NY", "postal_code": "10001", "country": "US"}  # fmt: skip


@pytest.fixture
def provider(shippo_stub: ShippoStub) -> ShippoShippingProvider:
    return ShippoShippingProvider(
        shippo_stub.api_key, address_from=FROM, api_base=shippo_stub.url,
        timeout=ADAPTER_TEST_TIMEOUT,
    )  # fmt: skip


def _request(shipment_id: str = "shp_1", carrier: str | None = None) -> LabelRequest:
    return LabelRequest(shipment_id, "ord_1", TO, units=2, carrier=carrier)


def test_quote_then_buy_gives_the_cheapest_label(
    provider: ShippoShippingProvider, shippo_stub: ShippoStub
) -> None:
    quote = provider.quote(_request())
    assert (quote.carrier, quote.service) == ("USPS", "usps_priority")
    label = provider.buy(_request(), quote)
    assert label.tracking_number.startswith("9400")
    assert label.label_url is not None
    assert label.label_url.endswith(".pdf")
    assert shippo_stub.labels_for("shp_1") == 1
    assert provider.buy(_request(), quote) == label  # bought once: found, not bought again
    assert shippo_stub.labels_for("shp_1") == 1
    ups = provider.quote(_request("shp_2", carrier="ups"))
    assert ups.carrier == "UPS"


def test_an_answer_lost_after_the_purchase_is_found_not_bought_again(
    provider: ShippoShippingProvider, shippo_stub: ShippoStub
) -> None:
    quote = provider.quote(_request())
    shippo_stub.lose_next_purchase_answer = True
    with pytest.raises(ShippingProviderUnavailable):
        provider.buy(_request(), quote)  # bought, but the answer was lost to the timeout
    assert shippo_stub.labels_for("shp_1") == 1
    label = provider.buy(_request(), quote)
    assert shippo_stub.labels_for("shp_1") == 1
    assert label.provider_label_id == shippo_stub.transactions[0]["object_id"]


def test_errors_are_unavailable_or_rejected(
    provider: ShippoShippingProvider, shippo_stub: ShippoStub
) -> None:
    shippo_stub.fail_next(1, 500)
    with pytest.raises(ShippingProviderUnavailable):
        provider.quote(_request())
    with pytest.raises(ShippingRejected):
        provider.quote(LabelRequest("shp_1", "ord_1", {**TO, "country": ""}, units=1))
    bad = ShippoShippingProvider("wrong", address_from=FROM, api_base=shippo_stub.url)
    with pytest.raises(ShippingRejected):
        bad.quote(_request())


def test_tracking_is_read_as_our_statuses(
    provider: ShippoShippingProvider, shippo_stub: ShippoStub
) -> None:
    label = provider.buy(_request(), provider.quote(_request()))
    shippo_stub.tracking[label.tracking_number] = [
        ("PRE_TRANSIT", None, "2026-01-01T10:00:00Z"),
        ("TRANSIT", None, "2026-01-02T10:00:00Z"),
        ("TRANSIT", "out_for_delivery", "2026-01-03T08:00:00Z"),
        ("UNKNOWN", None, "2026-01-03T09:00:00Z"),
        ("DELIVERED", None, "2026-01-03T15:00:00Z"),
    ]
    reports = provider.track("usps", label.tracking_number)
    assert [r.status for r in reports] == [
        ShipmentStatus.LABEL_CREATED,
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.DELIVERED,
    ]
    assert reports[-1].location == "Memphis, TN, US"
    provider.void(label)
    assert shippo_stub.refunds[0]["transaction"] == label.provider_label_id
