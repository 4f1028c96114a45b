"""Every event type the flows of today produce, through the real pipeline: per subject a
gapless sequence from 1, and each order's last event showing the order as GET does."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orderflow.models import Product
from tests.conftest import order_body, wait_for_status
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers


def _all_events(admin: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = None
    while True:
        body = admin.get("/events", params={"limit": 100, **({"after": after} if after else {})})
        page = body.json()
        items += page["items"]
        after = page["next_cursor"]
        if not page["has_more"]:
            return items


def test_every_event_type_of_todays_flows(
    local_pipeline: SystemProcesses,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    product = make_product(stock=100)

    def place(payment_method: str = "pm_card_visa") -> str:
        body = order_body((product.id, 1), payment_method=payment_method)
        answer = customer.post("/orders", json=body)
        assert answer.status_code == 201
        return str(answer.json()["id"])

    shipped, declined, refunded = place(), place("pm_card_chargeDeclined"), place()
    for order_id in (shipped, refunded):
        wait_for_status(customer, order_id, {"confirmed"})
    wait_for_status(customer, declined, {"failed"})

    def invoiced(order_id: str) -> bool:
        return customer.get(f"/orders/{order_id}").json()["invoice_number"] is not None

    wait_until(lambda: invoiced(shipped) and invoiced(refunded), 30)
    for status in ("shipped", "delivered"):
        answer = admin.put(f"/orders/{shipped}/status", json={"status": status})
        assert answer.status_code == 200, answer.text
    assert admin.delete(f"/orders/{refunded}").status_code == 204
    wait_until(
        lambda: customer.get(f"/orders/{refunded}").json()["payment_status"] == "refunded", 30
    )

    (refund_row,) = admin.get(f"/orders/{refunded}/refunds").json()
    refund_id = refund_row["id"]
    # The legacy status route ships and delivers through one manual shipment.
    (shipment,) = admin.get(f"/orders/{shipped}/shipments").json()["items"]
    expected = {
        shipped: ["order.placed", "payment.succeeded", "order.confirmed", "invoice.generated",
                  "order.shipped", "order.delivered"],
        declined: ["order.placed", "payment.failed", "order.failed"],
        refunded: ["order.placed", "payment.succeeded", "order.confirmed", "invoice.generated",
                   "order.cancelled", "order.updated"],
        refund_id: ["refund.succeeded"],
        shipment["id"]: ["shipment.created", "shipment.updated", "shipment.delivered"],
    }  # fmt: skip
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def complete() -> bool:
        by_subject.clear()
        for event in _all_events(admin):
            by_subject[event["subject"]["id"]].append(event)
        return sum(map(len, by_subject.values())) >= sum(map(len, expected.values()))

    wait_until(complete, 30)
    for subject, events in by_subject.items():
        events.sort(key=lambda event: event["sequence"])
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1)), subject
    # payment.succeeded and order.confirmed commit together, in the order they were recorded
    assert {s: [e["type"] for e in events] for s, events in by_subject.items()} == expected
    for order_id in (shipped, declined, refunded):
        assert by_subject[order_id][-1]["data"] == customer.get(f"/orders/{order_id}").json()
    shown = by_subject[shipment["id"]]
    assert {event["subject"]["type"] for event in shown} == {"shipment"}
    assert shown[-1]["data"] == customer.get(f"/shipments/{shipment['id']}").json()
    assert shown[-1]["data"]["order_id"] == shipped
    # The cancellation asked for the refund in its own transaction (order.cancelled shows the
    # refund pending); the refund's success changed the order's money: order.updated.
    cancelled, updated = by_subject[refunded][-2:]
    assert cancelled["data"]["refundable_amount"] == 0
    assert cancelled["data"]["payment_status"] == "paid"
    assert updated["data"] == customer.get(f"/orders/{refunded}").json()
    assert updated["data"]["payment_status"] == "refunded"
    assert updated["data"]["refunded_amount"] == product.price_amount
    confirmed = next(e for e in by_subject[shipped] if e["type"] == "payment.succeeded")
    assert confirmed["data"]["payment_status"] == "paid"  # the state as committed
    (refund,) = by_subject[refund_id]
    assert refund["subject"]["type"] == "refund"
    assert refund["data"]["order_id"] == refunded
    assert refund["data"]["amount"] == product.price_amount
