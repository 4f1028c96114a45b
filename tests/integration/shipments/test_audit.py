"""``orderflow audit``'s shipping checks: clean on shipments the API made, and each finds the
violation planted for it (planted in a transaction that is rolled back)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.models import Product
from tests.integration.shipments.conftest import ConfirmedOrder
from tests.system import wait_until

pytestmark = pytest.mark.workers

#: A violation per check, planted into the order's one shipment (``:s``) or order (``:o``).
PLANTED = {
    "shipped_within_ordered": [
        "UPDATE shipment_lines SET quantity = quantity + 1 WHERE shipment_id = :s"
    ],
    "one_label_per_shipment": [
        "ALTER TABLE shipment_labels DROP CONSTRAINT shipment_labels_one_per_shipment",
        """INSERT INTO shipment_labels (shipment_id, provider, provider_label_id, carrier,
                                        tracking_number, created_at)
           SELECT shipment_id, provider, provider_label_id || '-again', carrier,
                  tracking_number, now() FROM shipment_labels WHERE shipment_id = :s""",
    ],
    "shipping_status_matches_shipments": [
        "UPDATE orders SET shipping_status = 'partially_delivered' WHERE id = :o"
    ],
    # Delivered (at +20 min), then an update dated before it applied, what ``moves_to``
    # never allows, covered by a later delivery: in date order the history looks fine.
    "shipment_updates_applied_in_date_order": [
        """INSERT INTO shipment_events (shipment_id, status, occurred_at, source, applied,
                                        received_at)
           VALUES (:s, 'out_for_delivery', :at15, 'planted', true, now())""",
        """INSERT INTO shipment_events (shipment_id, status, occurred_at, source, applied,
                                        received_at)
           VALUES (:s, 'delivered', :at30, 'planted', true, now())""",
    ],
    # The shipment says delivered; its history says in transit.
    "shipment_moves_forward": [
        "UPDATE shipment_events SET applied = false WHERE shipment_id = :s AND status = 'delivered'"
    ],
}


@pytest.mark.parametrize("check", sorted(PLANTED))
def test_each_shipping_check_finds_its_planted_violation(
    check: str,
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 2))
    shipment = admin.post(f"/orders/{order['id']}/shipments", json={"buy_label": True}).json()
    wait_until(
        lambda: admin.get(f"/shipments/{shipment['id']}").json()["label_status"] == "purchased",
        30,
    )
    now = datetime.now(UTC)  # after the label's update
    for status, minutes in (("in_transit", 10), ("delivered", 20)):
        at = (now + timedelta(minutes=minutes)).isoformat()
        answer = admin.post(
            f"/shipments/{shipment['id']}/events", json={"status": status, "occurred_at": at}
        )
        assert answer.status_code == 201, answer.text
    assert admin.get(f"/orders/{order['id']}").json()["status"] == "delivered"

    with database.unit_of_work() as session:
        ours = [v for v in audit(session) if v.subject in (order["id"], shipment["id"])]
        assert [v for v in ours if v.check in PLANTED] == []  # (e-mails may still be owed)
        for statement in PLANTED[check]:
            at = {f"at{m}": now + timedelta(minutes=m) for m in (15, 30)}
            session.execute(text(statement), {"s": shipment["id"], "o": order["id"], **at})
        found = [
            v
            for v in audit(session)
            if v.subject in (order["id"], shipment["id"]) and v.check in PLANTED
        ]
        session.rollback()
    assert {v.check for v in found} == {check}, found
