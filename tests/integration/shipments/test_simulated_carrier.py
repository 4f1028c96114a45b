"""The whole life of an order as ``make run`` shows it, on the local providers with the
simulated carrier's clock made fast: confirmed, a shipment with a label bought in the
pipeline, then in transit, out for delivery and delivered as the carrier reports it, through
real workers and beat; the order's moves, business events and e-mails each once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.email.local import LocalEmailSender
from orderflow.idempotency import email_message_key
from orderflow.models import EmailRecord, Product
from orderflow.settings import Settings
from tests.conftest import Pipelines, order_body, wait_for_status
from tests.scrape import sample
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers

#: Seconds between the carrier's reports (``ORDERFLOW_LOCAL_CARRIER_STEP_SECONDS``).
STEP = 1.5


@pytest.fixture
def fast_carrier(pipelines: Pipelines, clean_database: Database) -> SystemProcesses:
    """Workers, relay and beat on the local providers, the simulated carrier on a fast clock
    (its own set of processes: the other tests' carrier takes its time)."""
    return pipelines.use("fast-carrier", {"ORDERFLOW_LOCAL_CARRIER_STEP_SECONDS": str(STEP)})


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_an_order_lives_from_confirmed_to_delivered_on_the_simulated_carrier(
    fast_carrier: SystemProcesses,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
    settings: Settings,
) -> None:
    mug = make_product()
    placed = customer.post("/orders", json=order_body((mug.id, 2)))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    wait_for_status(admin, order_id, {"confirmed"})

    created = admin.post(
        f"/orders/{order_id}/shipments",
        json={"buy_label": True},
        headers={"Idempotency-Key": "ship-it-once"},
    )
    assert created.status_code == 201, created.text
    shipment_id = created.json()["id"]

    # Follow the shipment as the customer does, and note every status it shows.
    shown: list[str] = []

    def delivered() -> bool:
        status = customer.get(f"/shipments/{shipment_id}").json()["status"]
        if not shown or shown[-1] != status:
            shown.append(status)
        return status == "delivered"

    wait_until(delivered, 20 * STEP + 30, interval=0.1)
    assert shown[0] in ("pending", "label_created")
    assert [s for s in shown if s != "pending"] == [
        "label_created", "in_transit", "out_for_delivery", "delivered",
    ]  # fmt: skip

    shipment = customer.get(f"/shipments/{shipment_id}").json()
    assert (shipment["carrier"], shipment["label_status"]) == ("local", "purchased")
    assert shipment["tracking_number"].startswith("LOC")
    history = [(e["status"], _at(e["occurred_at"])) for e in shipment["events"]]
    assert [status for status, _ in history] == [
        "label_created", "in_transit", "out_for_delivery", "delivered",
    ]  # fmt: skip
    # The carrier's reports are one step apart, each dated when it happened.
    walk = [at for _, at in history[1:]]
    assert [b - a for a, b in itertools.pairwise(walk)] == [timedelta(seconds=STEP)] * 2
    assert history[0][1] < walk[0]

    order = wait_for_status(customer, order_id, {"delivered"})
    assert order["shipping_status"] == "delivered"

    # The carrier keeps reporting what it saw; nothing new happens (deduplicated).
    time.sleep(3 * STEP)
    assert len(customer.get(f"/shipments/{shipment_id}").json()["events"]) == 4

    timeline = admin.get(f"/orders/{order_id}/events", params={"limit": 100}).json()["items"]
    moves = [e["data"]["to"] for e in timeline if e["type"] == "status_changed"]
    assert moves == ["confirmed", "shipped", "delivered"]
    assert [e["type"] for e in timeline].count("label_purchased") == 1

    def emails_sent() -> list[str]:
        with database.unit_of_work() as session:
            kinds = session.scalars(
                select(EmailRecord.kind)
                .where(EmailRecord.order_id == order_id, EmailRecord.status == "sent")
                .order_by(EmailRecord.id)
            ).all()
            session.commit()
        return list(kinds)

    wait_until(lambda: len(emails_sent()) == 3, 30)
    assert emails_sent() == ["confirmation", "shipped", "delivered"]
    sent = [e["data"]["kind"] for e in timeline if e["type"] == "email_sent"]
    assert sent.count("shipped") <= 1

    mail = LocalEmailSender(settings.emails_dir, settings.email_from).read(
        email_message_key(order_id, "shipped")
    )
    assert mail is not None
    body = mail.get_content()
    assert "Carrier: local" in body
    assert f"Tracking number: {shipment['tracking_number']}" in body
    assert f"Track it: /api/v1/shipments/{shipment_id}" in body

    def feed(types: str) -> list[dict[str, Any]]:
        items = admin.get("/events", params={"types": types, "limit": 100}).json()["items"]
        return [e for e in items if e["subject"]["id"] in (order_id, shipment_id)]

    wait_until(lambda: any(e["type"] == "order.delivered" for e in feed("order.*")), 30)
    order_types = [e["type"] for e in feed("order.*")]
    assert order_types.count("order.shipped") == 1
    assert order_types.count("order.delivered") == 1
    assert [e["type"] for e in feed("shipment.*")].count("shipment.delivered") == 1

    with database.unit_of_work() as session:
        assert [v for v in audit(session) if order_id in v.subject or "shp_" in v.subject] == []
        sources = session.scalars(
            text("SELECT source FROM shipment_events WHERE shipment_id = :s ORDER BY id"),
            {"s": shipment_id},
        ).all()
        session.commit()
    assert list(sources) == ["label", "provider", "provider", "provider"]

    # Shipments and labels by status, as the API's /metrics shows them now.
    scraped = httpx.get(f"{str(admin.base_url).removesuffix('/api/v1/')}/metrics", timeout=30)
    assert sample(scraped.text, "orderflow_shipments", status="delivered") == 1
    assert sample(scraped.text, "orderflow_shipments", status="in_transit") == 0
    assert sample(scraped.text, "orderflow_shipment_labels", status="purchased") == 1
