"""The local provider's simulated carrier on a clock the test sets: a parcel it labelled is
picked up when first tracked and reported one step apart, the same dates every time, by
every process sharing its folder; a parcel it never labelled is never reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from orderflow.shipping.local import LocalCarrier, LocalShippingProvider, tracking_number_for
from orderflow.shipping.provider import LabelRequest
from orderflow.statuses import ShipmentStatus as S

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _request(shipment_id: str = "shp_1") -> LabelRequest:
    address = {"name": "Ada", "line1": "1 Way", "city": "X", "postal_code": "1", "country": "US"}
    return LabelRequest(shipment_id, "ord_1", address, units=1)


def _walk(provider: LocalShippingProvider, number: str) -> list[tuple[S, datetime]]:
    return [(r.status, r.occurred_at) for r in provider.track("local", number)]


def test_a_labelled_parcel_is_walked_one_step_at_a_time(tmp_path: Path) -> None:
    clock = Clock()
    provider = LocalShippingProvider(LocalCarrier(tmp_path, STEP, clock))
    request = _request()
    label = provider.buy(request, provider.quote(request))
    clock.now = T0 + timedelta(seconds=5)
    assert _walk(provider, label.tracking_number) == []  # picked up now
    picked = clock.now
    clock.now = picked + STEP - timedelta(microseconds=1)
    assert _walk(provider, label.tracking_number) == []
    clock.now = picked + STEP
    assert _walk(provider, label.tracking_number) == [(S.IN_TRANSIT, picked + STEP)]
    clock.now = picked + 10 * STEP
    expected = [
        (S.IN_TRANSIT, picked + STEP),
        (S.OUT_FOR_DELIVERY, picked + 2 * STEP),
        (S.DELIVERED, picked + 3 * STEP),
    ]
    assert _walk(provider, label.tracking_number) == expected
    assert _walk(provider, label.tracking_number) == expected  # the same dates again


def test_every_process_on_the_folder_sees_the_same_pickup(tmp_path: Path) -> None:
    clock = Clock()
    first = LocalShippingProvider(LocalCarrier(tmp_path, STEP, clock))
    request = _request()
    number = first.buy(request, first.quote(request)).tracking_number
    assert _walk(first, number) == []
    later = Clock()
    later.now = T0 + STEP  # another process, tracking the parcel for the first time later
    second = LocalShippingProvider(LocalCarrier(tmp_path, STEP, later))
    assert _walk(second, number) == [(S.IN_TRANSIT, T0 + STEP)]


def test_parcels_it_never_labelled_are_never_reported(tmp_path: Path) -> None:
    clock = Clock()
    provider = LocalShippingProvider(LocalCarrier(tmp_path, STEP, clock))
    clock.now = T0 + 100 * STEP
    assert _walk(provider, tracking_number_for("shp_never_bought")) == []
    assert _walk(provider, "../../etc/passwd") == []
    assert list(tmp_path.iterdir()) == []
    # Without a carrier (labels only), nothing is ever reported.
    bare = LocalShippingProvider()
    request = _request()
    assert bare.track("local", bare.buy(request, bare.quote(request)).tracking_number) == []
