"""Changing an order (``PATCH /orders/{id}``) and the credit notes of refunds after the
invoice, through the real API and workers on the local providers."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.models import EmailRecord, Product, StockReservation
from tests.conftest import order_body, wait_for_status
from tests.system import wait_until

pytestmark = pytest.mark.workers

NEW_ADDRESS = {**order_body()["shipping_address"], "line1": "500 Park Ave", "line2": "Apt 4"}


def _invoiced_order(customer: httpx.Client, *lines: tuple[Product, int]) -> str:
    answer = customer.post("/orders", json=order_body(*((p.id, q) for p, q in lines)))
    assert answer.status_code == 201, answer.text
    order_id = str(answer.json()["id"])
    assert wait_for_status(customer, order_id, {"confirmed", "failed"})["status"] == "confirmed"
    wait_until(lambda: customer.get(f"/orders/{order_id}").json()["invoice_number"], 30)
    return order_id


def _settled(client: httpx.Client, order_id: str) -> dict[str, Any]:
    def settled() -> bool:
        refunds = client.get(f"/orders/{order_id}/refunds").json()
        return all(refund["status"] != "pending" for refund in refunds)

    wait_until(settled, 30)
    return dict(client.get(f"/orders/{order_id}").json())


def _events(client: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/orders/{order_id}/events", params={"limit": 100}).json()["items"])


def _stock(database: Database, product_id: str) -> int:
    with database.unit_of_work() as session:
        stock = session.scalar(select(Product.stock).where(Product.id == product_id))
    assert stock is not None
    return int(stock)


def _emails_sent(database: Database, order_id: str) -> list[str]:
    with database.unit_of_work() as session:
        return sorted(
            session.scalars(
                select(EmailRecord.kind).where(
                    EmailRecord.order_id == order_id, EmailRecord.status == "sent"
                )
            )
        )


def _clean_audit(database: Database) -> list[str]:
    with database.unit_of_work() as session:
        return [str(violation) for violation in audit(session)]


def test_the_address_changes_until_the_first_shipment(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    database: Database,
    make_product: Callable[..., Product],
) -> None:
    product = make_product(price=1000, stock=5)
    order_id = _invoiced_order(customer, (product, 2))
    changed = customer.patch(f"/orders/{order_id}", json={"shipping_address": NEW_ADDRESS})
    assert changed.status_code == 200, changed.text
    assert changed.json()["shipping_address"] == NEW_ADDRESS
    assert changed.json()["total"] == 2000  # nothing else moved
    updated = [e for e in _events(customer, order_id) if e["type"] == "order_updated"]
    assert len(updated) == 1
    assert updated[0]["data"]["shipping_address"] == NEW_ADDRESS
    wait_until(lambda: any(k.startswith("updated:") for k in _emails_sent(database, order_id)), 30)
    # The same body again changes nothing: no second event.
    assert customer.patch(f"/orders/{order_id}", json={"shipping_address": NEW_ADDRESS}).is_success
    assert [e["type"] for e in _events(customer, order_id)].count("order_updated") == 1

    shipment = admin.post(
        f"/orders/{order_id}/shipments", json={"lines": [{"product_id": product.id, "quantity": 1}]}
    )
    assert shipment.status_code == 201, shipment.text
    refused = customer.patch(
        f"/orders/{order_id}", json={"shipping_address": order_body()["shipping_address"]}
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/order-not-changeable")
    assert customer.get(f"/orders/{order_id}").json()["shipping_address"] == NEW_ADDRESS
    # The shipped line cannot go down either.
    lowered = customer.patch(
        f"/orders/{order_id}", json={"items": [{"product_id": product.id, "quantity": 1}]}
    )
    assert lowered.status_code == 409
    assert _clean_audit(database) == []


def test_lowering_a_line_of_a_paid_order(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    database: Database,
    make_product: Callable[..., Product],
) -> None:
    pen, ink = make_product(price=2500, stock=10), make_product(price=1000, stock=10)
    order_id = _invoiced_order(customer, (pen, 3), (ink, 1))
    assert _stock(database, pen.id) == 7
    invoice = customer.get(f"/orders/{order_id}/invoice").content

    answer = customer.patch(
        f"/orders/{order_id}", json={"items": [{"product_id": pen.id, "quantity": 1}]}
    )
    assert answer.status_code == 200, answer.text
    order = answer.json()
    assert (order["total"], order["subtotal"]) == (3500, 3500)
    assert [(i["product_id"], i["quantity"], i["subtotal"]) for i in order["items"]] == [
        (pen.id, 1, 2500),
        (ink.id, 1, 1000),
    ]
    assert _stock(database, pen.id) == 9  # two back, at once
    (refund,) = admin.get(f"/orders/{order_id}/refunds").json()
    assert refund["amount"] == 5000  # two pens at the price the order was placed with

    order = _settled(customer, order_id)
    assert (order["refunded_amount"], order["captured_amount"]) == (5000, 8500)
    assert (order["payment_status"], order["refundable_amount"]) == ("partially_refunded", 3500)
    wait_until(lambda: customer.get(f"/orders/{order_id}/credit-notes").json(), 30)
    (note,) = customer.get(f"/orders/{order_id}/credit-notes").json()
    assert (note["amount"], note["currency"], note["refund_id"]) == (5000, "usd", refund["id"])
    assert note["number"].startswith("CN-")
    assert note["number"].endswith("-000001")
    assert note["invoice_number"] == order["invoice_number"]
    pdf = customer.get(note["url"].removeprefix("/api/v1"))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert customer.get(f"/orders/{order_id}/invoice").content == invoice  # never changes
    missing = customer.get(f"/orders/{order_id}/credit-notes/CN-2000-000009.pdf")
    assert missing.status_code == 404

    def mailed() -> bool:
        kinds = _emails_sent(database, order_id)
        return f"refunded:{refund['id']}" in kinds and any(k.startswith("updated:") for k in kinds)

    wait_until(mailed, 30)
    events = _events(admin, order_id)
    types = [e["type"] for e in events]
    # One change asked for (it names its items); the refund it started moves the order's
    # money later, in entries of their own that name what changed.
    changes = [e for e in events if e["type"] == "order_updated" and "items" in e["data"]]
    assert len(changes) == 1
    assert types.count("credit_note_issued") == 1
    assert types.count("stock_released") == 1

    def in_feed() -> list[dict[str, Any]]:  # the feed shows an event once it is safe to page
        return list(admin.get("/events", params={"types": "order.updated"}).json()["items"])

    wait_until(in_feed, 30)
    feed = in_feed()
    # The change's, then its refund's: each shows the order as it is after the change.
    assert {(e["subject"]["id"], e["data"]["total"]) for e in feed} == {(order_id, 3500)}

    # Sending the same change again changes nothing: no second refund, no stock.
    again = customer.patch(
        f"/orders/{order_id}", json={"items": [{"product_id": pen.id, "quantity": 1}]}
    )
    assert again.status_code == 200
    assert len(admin.get(f"/orders/{order_id}/refunds").json()) == 1
    assert _stock(database, pen.id) == 9
    with database.unit_of_work() as session:
        ledger = session.execute(
            text("SELECT kind, delta FROM stock_ledger WHERE order_id = :o AND product_id = :p"),
            {"o": order_id, "p": pen.id},
        ).all()
    assert sorted(ledger) == [("lower", 2), ("reserve", -3)]
    assert _clean_audit(database) == []


def test_raising_or_adding_is_409_and_writes_nothing(
    local_pipeline: Any,
    customer: httpx.Client,
    database: Database,
    make_product: Callable[..., Product],
) -> None:
    pen, other = make_product(price=2500, stock=10), make_product(price=100, stock=10)
    order_id = _invoiced_order(customer, (pen, 2))
    before = customer.get(f"/orders/{order_id}").json()
    events = len(_events(customer, order_id))
    for items, status in [
        ([{"product_id": pen.id, "quantity": 3}], 409),
        ([{"product_id": other.id, "quantity": 1}], 409),
        ([{"product_id": pen.id, "quantity": 1}, {"product_id": other.id, "quantity": 1}], 409),
        ([{"product_id": pen.id, "quantity": 1}, {"product_id": pen.id, "quantity": 0}], 422),
        ([{"product_id": pen.id, "quantity": -1}], 422),
        ([], 422),
    ]:
        answer = customer.patch(f"/orders/{order_id}", json={"items": items})
        assert answer.status_code == status, (items, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert customer.patch(f"/orders/{order_id}", json={}).status_code == 422
    after = customer.get(f"/orders/{order_id}").json()
    assert after["items"] == before["items"]
    assert after["total"] == before["total"]
    assert len(_events(customer, order_id)) == events
    assert customer.get(f"/orders/{order_id}/refunds").json() == []
    assert _stock(database, pen.id) == 8


def test_every_line_to_zero_cancels_the_order(
    local_pipeline: Any,
    customer: httpx.Client,
    database: Database,
    make_product: Callable[..., Product],
) -> None:
    pen, ink = make_product(price=2500, stock=10), make_product(price=1000, stock=10)
    order_id = _invoiced_order(customer, (pen, 1), (ink, 2))
    answer = customer.patch(
        f"/orders/{order_id}",
        json={
            "items": [{"product_id": pen.id, "quantity": 0}, {"product_id": ink.id, "quantity": 0}]
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    order = _settled(customer, order_id)
    assert (order["payment_status"], order["refunded_amount"]) == ("refunded", 4500)
    assert (_stock(database, pen.id), _stock(database, ink.id)) == (10, 10)
    wait_until(lambda: len(customer.get(f"/orders/{order_id}/credit-notes").json()) == 1, 30)
    wait_until(lambda: "cancelled" in _emails_sent(database, order_id), 30)
    # Removing one line of two only lowers the order.
    second = _invoiced_order(customer, (pen, 1), (ink, 2))
    answer = customer.patch(
        f"/orders/{second}", json={"items": [{"product_id": ink.id, "quantity": 0}]}
    )
    assert (answer.json()["status"], answer.json()["total"]) == ("confirmed", 2500)
    assert [item["product_id"] for item in answer.json()["items"]] == [pen.id]
    with database.unit_of_work() as session:
        released = session.scalar(
            select(StockReservation.released_at).where(
                StockReservation.order_id == second, StockReservation.product_id == ink.id
            )
        )
    assert released is not None
    _settled(customer, second)
    wait_until(lambda: len(customer.get(f"/orders/{second}/credit-notes").json()) == 1, 30)
    wait_until(lambda: _clean_audit(database) == [], 30)


def test_a_change_and_a_shipment_of_the_same_line_never_both_win(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    database: Database,
    make_product: Callable[..., Product],
) -> None:
    pen, ink = make_product(price=500, stock=50), make_product(price=300, stock=50)
    for _ in range(4):
        order_id = _invoiced_order(customer, (pen, 2), (ink, 1))
        with ThreadPoolExecutor(2) as pool:
            change = pool.submit(
                customer.patch,
                f"/orders/{order_id}",
                json={"items": [{"product_id": pen.id, "quantity": 0}]},
            )
            shipment = pool.submit(admin.post, f"/orders/{order_id}/shipments", json={})
        changed, shipped = change.result(), shipment.result()
        assert shipped.status_code == 201, shipped.text
        lines = {line["product_id"]: line["quantity"] for line in shipped.json()["lines"]}
        if changed.status_code == 200:  # the change went first: the shipment has no pens
            assert lines == {ink.id: 1}
        else:  # the shipment went first: the pens are in it, the change is refused
            assert changed.status_code == 409, changed.text
            assert lines == {pen.id: 2, ink.id: 1}
        _settled(customer, order_id)
    wait_until(lambda: _clean_audit(database) == [], 30)
