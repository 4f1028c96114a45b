"""POST /webhooks/shippo: a secret token in the URL, a guarded body, a fast answer that
only schedules; the tracking history read back from Shippo (the stand-in) moves the
shipment, once, whatever the redeliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from orderflow.db import Database
from orderflow.fulfilment import labels, tracking
from orderflow.models import OutboxMessage, Product
from orderflow.settings import Settings
from orderflow.shipping.shippo_provider import ShippoShippingProvider
from tests.conftest import serving
from tests.integration.shipments.conftest import ConfirmedOrder
from tests.stubs import SHIPPO_WEBHOOK_TOKEN
from tests.stubs.shippo_server import ShippoStub

pytestmark = pytest.mark.workers

TOKEN = SHIPPO_WEBHOOK_TOKEN


@pytest.fixture(scope="module")
def shippo_api(settings: Settings) -> Iterator[str]:
    with serving(settings.model_copy(update={"shippo_webhook_token": SecretStr(TOKEN)})) as url:
        yield f"{url}/api/v1"


def test_track_updated_reads_tracking_back_and_applies_it_once(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
    shippo_api: str,
    settings: Settings,
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 1))
    # A shipment whose label Shippo sold, bought in-process against the stand-in.
    shipment = admin.post(f"/orders/{order['id']}/shipments", json={"carrier": "usps"}).json()
    with ShippoStub() as stub:
        provider = ShippoShippingProvider(
            stub.api_key, address_from=settings.ship_from_address, api_base=stub.url, timeout=2
        )
        with database.unit_of_work() as session:
            from orderflow.models import Shipment
            from orderflow.statuses import LabelStatus

            session.get(Shipment, shipment["id"]).label_status = LabelStatus.PENDING  # type: ignore[union-attr]
            session.commit()
        labels.buy_label(database, provider, shipment["id"])
        bought = admin.get(f"/shipments/{shipment['id']}").json()
        assert (bought["status"], bought["label_status"]) == ("label_created", "purchased")
        number = bought["tracking_number"]
        assert stub.labels_for(shipment["id"]) == 1
        labels.buy_label(database, provider, shipment["id"])  # a redelivered step: no new label
        assert stub.labels_for(shipment["id"]) == 1

        body = {"event": "track_updated", "test": True,
                "data": {"carrier": "usps", "tracking_number": number,
                         "tracking_status": {"status": "DELIVERED"}}}  # fmt: skip
        with httpx.Client(base_url=shippo_api, timeout=10) as hook:
            assert hook.post("/webhooks/shippo", json=body).status_code == 401
            assert hook.post("/webhooks/shippo?token=wrong", json=body).status_code == 401
            assert hook.post(f"/webhooks/shippo?token={TOKEN}", content=b"[1]").status_code == 400
            missing = {"event": "track_updated", "data": {"carrier": "usps"}}
            assert hook.post(f"/webhooks/shippo?token={TOKEN}", json=missing).status_code == 400
            other = {"event": "transaction_created", "data": {}}
            assert hook.post(f"/webhooks/shippo?token={TOKEN}", json=other).json()["scheduled"] == 0
            answer = hook.post(f"/webhooks/shippo?token={TOKEN}", json=body)
            assert answer.status_code == 200
            assert answer.json() == {"received": "track_updated", "scheduled": 1}
        # The body said delivered; nothing moved until Shippo's own history is read.
        assert admin.get(f"/shipments/{shipment['id']}").json()["status"] == "label_created"
        with database.unit_of_work() as session:
            topics = session.scalars(
                select(OutboxMessage.topic).where(OutboxMessage.order_id == order["id"])
            ).all()
        assert "orderflow.track_shipment" in topics

        def later(minutes: int) -> str:  # carrier scans come after the label was bought
            return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()

        stub.tracking[number] = [
            ("TRANSIT", None, later(1)),
            ("TRANSIT", "out_for_delivery", later(2)),
        ]
        assert tracking.refresh_tracking(database, provider, shipment["id"]) == 2
        assert tracking.refresh_tracking(database, provider, shipment["id"]) == 0  # redelivered
        after = admin.get(f"/orders/{order['id']}").json()
        assert (after["status"], after["shipping_status"]) == ("shipped", "shipped")
        stub.tracking[number].append(("DELIVERED", None, later(3)))
        assert tracking.refresh_tracking(database, provider, shipment["id"]) == 1
    final = admin.get(f"/orders/{order['id']}").json()
    assert (final["status"], final["shipping_status"]) == ("delivered", "delivered")
    assert [e["status"] for e in admin.get(f"/shipments/{shipment['id']}").json()["events"]][
        -3:
    ] == ["in_transit", "out_for_delivery", "delivered"]
