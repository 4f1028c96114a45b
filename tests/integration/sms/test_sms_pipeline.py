"""The whole path with real worker processes (local providers): a customer who opted in
gets a text when the order ships (carrier, tracking number and link) and one when it is
delivered, through the ``send_sms`` step; a customer who did not gets none."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from orderflow.db import Database
from orderflow.models import Product, SmsRecord, User
from orderflow.settings import Settings
from orderflow.sms import LocalSmsSender
from orderflow.statuses import SmsStatus
from tests.conftest import order_body, wait_for_status
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers

TRACKING_URL = "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400TEST0001"


def _ship_and_deliver(admin: httpx.Client, order_id: str, tracking: str) -> None:
    created = admin.post(
        f"/orders/{order_id}/shipments",
        json={"carrier": "usps", "tracking_number": tracking, "tracking_url": TRACKING_URL},
    )
    assert created.status_code == 201, created.text
    shipment_id = created.json()["id"]
    start = datetime.now(UTC)
    for offset, status in enumerate(("in_transit", "delivered")):
        at = (start + timedelta(minutes=offset)).isoformat().replace("+00:00", "Z")
        answer = admin.post(
            f"/shipments/{shipment_id}/events", json={"status": status, "occurred_at": at}
        )
        assert answer.status_code == 201, answer.text
        wait_for_status(admin, order_id, {"shipped" if offset == 0 else "delivered"})


def _confirmed(customer: httpx.Client, admin: httpx.Client, product: Product) -> str:
    placed = customer.post("/orders", json=order_body((product.id, 2)))
    assert placed.status_code == 201, placed.text
    return str(wait_for_status(admin, placed.json()["id"], {"confirmed"})["id"])


def test_shipped_and_delivered_texts_reach_a_customer_who_opted_in(
    local_pipeline: SystemProcesses,
    settings: Settings,
    clean_database: Database,
    customer: httpx.Client,
    admin: httpx.Client,
    make_user: Callable[..., User],
    login_as: Callable[[User], httpx.Client],
    make_product: Callable[..., Product],
) -> None:
    opted = customer.patch("/auth/me", json={"phone": "+1 415-555-0199", "sms_opt_in": True})
    assert opted.status_code == 200, opted.text
    silent = login_as(make_user())
    product = make_product()
    texted, not_texted = _confirmed(customer, admin, product), _confirmed(silent, admin, product)

    _ship_and_deliver(admin, texted, "9400TEST0001")
    _ship_and_deliver(admin, not_texted, "9400TEST0002")

    phone_box = LocalSmsSender(settings.sms_dir, settings.twilio_from)
    wait_until(lambda: phone_box.read(f"{texted}:sms:delivered") is not None, 30)

    def marked_sent() -> bool:  # the file is written before its row is marked sent
        with clean_database.unit_of_work() as session:
            statuses = session.scalars(select(SmsRecord.status)).all()
        return statuses.count(SmsStatus.SENT) == 2

    wait_until(marked_sent, 30)
    shipped = phone_box.read(f"{texted}:sms:shipped")
    assert shipped is not None
    assert shipped.to == "+14155550199"
    assert shipped.body == (
        f"orderflow: your order {texted} has shipped. Tracking: USPS 9400TEST0001 "
        f"{TRACKING_URL}. Reply STOP to opt out."
    )
    with clean_database.unit_of_work() as session:
        rows = session.scalars(select(SmsRecord).order_by(SmsRecord.id)).all()
        assert [(r.order_id, r.kind, r.status) for r in rows] == [
            (texted, "shipped", SmsStatus.SENT),
            (texted, "delivered", SmsStatus.SENT),
        ]
    timeline = customer.get(f"/orders/{texted}/events", params={"limit": 100}).json()["items"]
    assert sorted(e["data"]["kind"] for e in timeline if e["type"] == "sms_sent") == [
        "delivered",
        "shipped",
    ]
    assert phone_box.read(f"{not_texted}:sms:shipped") is None
