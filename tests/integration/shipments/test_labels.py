"""Labels bought in the pipeline (local provider): a tracking number and a PDF, once."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import redis
from sqlalchemy import func, select, text

from orderflow.db import Database
from orderflow.fulfilment.sweeper import Redrive, find_stalled_work
from orderflow.models import Product, ShipmentLabel
from orderflow.steps import Step
from tests.integration.shipments.conftest import ConfirmedOrder
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers


def test_a_label_is_bought_in_the_pipeline_and_served(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 2))
    created = admin.post(f"/orders/{order['id']}/shipments", json={"buy_label": True})
    assert created.status_code == 201, created.text
    shipment = created.json()
    assert (shipment["status"], shipment["label_status"]) == ("pending", "pending")

    seen: dict = {}

    def bought() -> bool:
        seen.update(admin.get(f"/shipments/{shipment['id']}").json())
        return seen["label_status"] == "purchased"

    wait_until(bought, 30)
    assert seen["status"] == "label_created"
    assert seen["tracking_number"].startswith("LOC")
    assert seen["label_url"] == f"/api/v1/shipments/{shipment['id']}/label"
    pdf = customer.get(f"/shipments/{shipment['id']}/label")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert [e["status"] for e in seen["events"]] == ["label_created"]
    with database.unit_of_work() as session:
        count = session.scalar(select(func.count()).select_from(ShipmentLabel))
    assert count == 1

    cancelled = admin.post(f"/shipments/{shipment['id']}/cancel").json()
    assert (cancelled["status"], cancelled["label_status"]) == ("cancelled", "voided")

    def voided() -> bool:
        with database.unit_of_work() as session:
            return session.scalar(select(ShipmentLabel.voided_at)) is not None

    wait_until(voided, 30)
    assert admin.get(f"/orders/{order['id']}").json()["shipping_status"] == "processing"


def test_the_sweeper_redrives_a_label_purchase_whose_message_was_lost(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
    local_pipeline: SystemProcesses,
    redis_url: str,
) -> None:
    """The purchase step's message is lost with the broker's queues: the shipment waits with
    its label ``pending``; untouched for a stall period, the sweeper schedules it again."""
    mug = make_product()
    order = confirmed_order((mug, 1))
    local_pipeline.kill("worker-io")  # the labels' worker
    try:
        shipment = admin.post(f"/orders/{order['id']}/shipments", json={"buy_label": True}).json()

        def published() -> bool:
            with database.unit_of_work() as session:
                return not session.scalar(
                    text("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL")
                )

        wait_until(published, 30)
        redis.Redis.from_url(redis_url).flushdb()  # the message is gone
        with database.unit_of_work() as session:
            work = find_stalled_work(session, 0)
        assert Redrive(Step.BUY_LABEL, order["id"], {"shipment_id": shipment["id"]}) in work
    finally:
        local_pipeline.restart("worker-io")
    wait_until(
        lambda: admin.get(f"/shipments/{shipment['id']}").json()["label_status"] == "purchased",
        60,
    )
