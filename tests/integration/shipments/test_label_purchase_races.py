"""Two runs of the label purchase of one shipment at once (the sweeper's re-drive while the
first run waits to retry, a redelivery), through Shippo's SDK to the stand-in: Shippo takes
no idempotency key and both runs would look the rate's labels up before either bought one;
the purchase lease lets one buy and the other leave it to it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.fulfilment import labels
from orderflow.models import Product, Shipment, ShipmentLabel
from orderflow.settings import Settings
from orderflow.shipping.shippo_provider import ShippoShippingProvider
from orderflow.statuses import LabelStatus
from tests.integration.shipments.conftest import ConfirmedOrder
from tests.stubs.shippo_server import ShippoStub

pytestmark = pytest.mark.workers


def test_two_purchases_of_one_label_at_once_buy_it_once(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
    settings: Settings,
    shippo_stub: ShippoStub,
) -> None:
    order = confirmed_order((make_product(), 1))
    # A shipment whose label is owed, bought here against the stand-in (not by the workers,
    # which use the local provider).
    shipment_id = admin.post(f"/orders/{order['id']}/shipments", json={}).json()["id"]
    with database.unit_of_work() as session:
        shipment = session.get(Shipment, shipment_id)
        assert shipment is not None
        shipment.label_status = LabelStatus.PENDING
        session.commit()
    provider = ShippoShippingProvider(
        shippo_stub.api_key, address_from=settings.ship_from_address, api_base=shippo_stub.url,
        timeout=8,
    )  # fmt: skip
    # Look-ups of the rate's labels are answered 3 s late: without the lease both runs
    # would have looked before either bought.
    shippo_stub.hang_next(2, seconds=3.0, path="/transactions", after_processing=True)
    start = threading.Barrier(2)

    def run(_: int) -> None:
        start.wait()
        labels.buy_label(database, provider, shipment_id)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, range(2)))

    assert shippo_stub.labels_for(shipment_id) == 1
    with database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(ShipmentLabel)) == 1
        shipment = session.get(Shipment, shipment_id)
        assert shipment is not None
        assert shipment.label_status is LabelStatus.PURCHASED
    # The lease was given back: a later run (a redelivery) finds the label, buys nothing.
    labels.buy_label(database, provider, shipment_id)
    assert shippo_stub.labels_for(shipment_id) == 1
