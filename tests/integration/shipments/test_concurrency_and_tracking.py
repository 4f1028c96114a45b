"""Concurrent shipment creations over the same lines (exactly as many win as fit), tracking
updates deduplicated and never moving a shipment backwards, the legacy status route."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.models import Product
from tests.integration.shipments.conftest import ConfirmedOrder

pytestmark = pytest.mark.workers


def test_concurrent_shipments_of_the_same_lines_exactly_one_wins(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    mug, tee = make_product(), make_product()
    order = confirmed_order((mug, 2), (tee, 1))
    body = {"lines": [{"product_id": mug.id, "quantity": 2}, {"product_id": tee.id, "quantity": 1}]}
    start = threading.Barrier(8)

    def ship(_: int) -> httpx.Response:
        with httpx.Client(base_url=admin.base_url, headers=admin.headers, timeout=30) as client:
            start.wait()
            return client.post(f"/orders/{order['id']}/shipments", json=body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ship, range(8)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7
    assert admin.get(f"/orders/{order['id']}/shipments").json()["total"] == 1
    with database.unit_of_work() as session:
        assert [v for v in audit(session) if v.check.startswith("ship")] == []


def test_concurrent_partial_shipments_never_exceed_the_ordered_quantity(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 5))
    start = threading.Barrier(10)

    def ship(_: int) -> int:
        with httpx.Client(base_url=admin.base_url, headers=admin.headers, timeout=30) as client:
            start.wait()
            body = {"lines": [{"product_id": mug.id, "quantity": 1}]}
            return client.post(f"/orders/{order['id']}/shipments", json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(ship, range(10)))
    assert sorted(codes) == [201] * 5 + [409] * 5
    with database.unit_of_work() as session:
        shipped = session.scalar(
            text(
                "SELECT sum(l.quantity) FROM shipment_lines l JOIN shipments s "
                "ON s.id = l.shipment_id WHERE s.order_id = :o AND s.status <> 'cancelled'"
            ),
            {"o": order["id"]},
        )
    assert shipped == 5


def _event(admin: httpx.Client, shipment_id: str, status: str, at: str) -> httpx.Response:
    return admin.post(
        f"/shipments/{shipment_id}/events", json={"status": status, "occurred_at": at}
    )


def test_tracking_updates_are_deduplicated_and_never_move_backwards(
    confirmed_order: ConfirmedOrder, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 1))
    shipment = admin.post(f"/orders/{order['id']}/shipments", json={}).json()
    sid = shipment["id"]

    assert _event(admin, sid, "out_for_delivery", "2026-01-02T08:00:00Z").status_code == 201
    again = _event(admin, sid, "out_for_delivery", "2026-01-02T08:00:00+00:00")
    assert again.status_code == 200  # the same update: acknowledged, nothing changes
    late = _event(admin, sid, "in_transit", "2026-01-01T08:00:00Z")
    assert late.status_code == 201  # kept in the history, but dated before: no move
    assert late.json()["status"] == "out_for_delivery"
    assert [e["status"] for e in late.json()["events"]] == ["in_transit", "out_for_delivery"]
    assert admin.get(f"/orders/{order['id']}").json()["status"] == "shipped"

    # A missed attempt: back in transit, dated later, is a move the carrier makes.
    assert _event(admin, sid, "in_transit", "2026-01-02T20:00:00Z").json()["status"] == "in_transit"
    assert _event(admin, sid, "delivered", "2026-01-03T09:00:00Z").json()["status"] == "delivered"
    assert _event(admin, sid, "in_transit", "2026-01-04T09:00:00Z").json()["status"] == "delivered"
    bad = [
        admin.post(f"/shipments/{sid}/events", json=body).status_code
        for body in (
            {"status": "cancelled", "occurred_at": "2026-01-05T00:00:00Z"},
            {"status": "pending", "occurred_at": "2026-01-05T00:00:00Z"},
            {"status": "lost", "occurred_at": "2026-01-05T00:00:00Z"},
            {"status": "delivered", "occurred_at": "yesterday"},
            {"status": "delivered", "occurred_at": "2999-01-01T00:00:00Z"},
            {"status": "delivered"},
        )
    ]
    assert bad == [422] * 6
    final = admin.get(f"/orders/{order['id']}").json()
    assert (final["status"], final["shipping_status"]) == ("delivered", "delivered")
    moves = [
        e["data"]["to"]
        for e in admin.get(f"/orders/{order['id']}/events", params={"limit": 100}).json()["items"]
        if e["type"] == "status_changed"
    ]
    assert moves == ["confirmed", "shipped", "delivered"]  # each once


def test_legacy_status_route_ships_and_delivers_through_shipments(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    mug, tee = make_product(), make_product()
    order = confirmed_order((mug, 3), (tee, 2))
    waiting = admin.post(
        f"/orders/{order['id']}/shipments", json={"lines": [{"product_id": mug.id, "quantity": 1}]}
    ).json()

    shipped = admin.put(f"/orders/{order['id']}/status", json={"status": "shipped"})
    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["shipping_status"]) == ("shipped", "shipped")
    shipments = admin.get(f"/orders/{order['id']}/shipments").json()["items"]
    assert [s["status"] for s in shipments] == ["in_transit", "in_transit"]
    assert shipments[0]["id"] == waiting["id"]
    assert sorted(
        (line["product_id"], line["quantity"]) for line in shipments[1]["lines"]
    ) == sorted([(mug.id, 2), (tee.id, 2)])
    assert admin.put(f"/orders/{order['id']}/status", json={"status": "shipped"}).status_code == 409

    delivered = admin.put(f"/orders/{order['id']}/status", json={"status": "delivered"})
    assert delivered.status_code == 200
    assert (delivered.json()["status"], delivered.json()["shipping_status"]) == (
        "delivered",
        "delivered",
    )
    statuses = {s["status"] for s in admin.get(f"/orders/{order['id']}/shipments").json()["items"]}
    assert statuses == {"delivered"}
    moves = [
        (e["data"]["from"], e["data"]["to"])
        for e in admin.get(f"/orders/{order['id']}/events", params={"limit": 100}).json()["items"]
        if e["type"] == "status_changed"
    ]
    assert moves == [("pending", "confirmed"), ("confirmed", "shipped"), ("shipped", "delivered")]

    def emails_sent() -> set[str]:
        with database.unit_of_work() as session:
            rows = session.execute(
                text("SELECT kind FROM emails WHERE order_id = :o AND status = 'sent'"),
                {"o": order["id"]},
            )
            return {row[0] for row in rows}

    from tests.system import wait_until

    wait_until(lambda: {"shipped", "delivered"} <= emails_sent(), 30)
    with database.unit_of_work() as session:
        assert [str(v) for v in audit(session)] == []


def test_an_instant_before_year_1_in_utc_is_a_422_not_a_500(
    confirmed_order: ConfirmedOrder, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    """Found by ``make fuzz``: valid RFC 3339, but year 0 once moved to UTC, which PostgreSQL
    stores and Python cannot read back."""
    order = confirmed_order((make_product(), 1))
    shipment = admin.post(f"/orders/{order['id']}/shipments", json={}).json()

    answer = _event(admin, shipment["id"], "failure", "0001-01-01T00:00:01+04:00")

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "occurred_at"
    assert _event(admin, shipment["id"], "failure", "0001-01-01T00:00:01Z").status_code == 201
