"""What a return may hold: only units under way, only within the return window, never more
than shipped less returned, whatever the concurrency; a refused return writes nothing."""

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
from tests.integration.returns.conftest import ask_return, move_shipment, new_shipment, ship
from tests.integration.shipments.conftest import ConfirmedOrder

pytestmark = pytest.mark.workers


def _written(database: Database) -> tuple[int, int, int, int]:
    """Returns, their lines, their timeline entries and business events, counted (the
    workers write other entries of the order meanwhile: its e-mails, say)."""
    with database.unit_of_work() as session:
        row = session.execute(
            text(
                "SELECT (SELECT count(*) FROM returns), (SELECT count(*) FROM return_lines),"
                " (SELECT count(*) FROM order_events WHERE type LIKE 'return%'),"
                " (SELECT count(*) FROM events WHERE type LIKE 'return.%')"
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def test_more_than_shipped_is_409_and_writes_nothing(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen, ink = make_product(), make_product()
    order = confirmed_order((pen, 3), (ink, 1))
    assert ask_return(customer, order["id"], (pen.id, 1)).status_code == 409  # none shipped
    ship(admin, order["id"], (pen.id, 1), delivered_days_ago=None)  # in transit
    waiting = admin.post(  # a label, not under way: not returnable
        f"/orders/{order['id']}/shipments", json={"lines": [{"product_id": pen.id, "quantity": 1}]}
    )
    assert waiting.status_code == 201
    before = _written(database)
    for lines in ([(pen.id, 2)], [(pen.id, 1), (ink.id, 1)]):
        answer = ask_return(customer, order["id"], *lines)
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "/problems/return-exceeds-shipped"
    unknown = ask_return(customer, order["id"], (make_product().id, 1))
    assert unknown.status_code == 422
    zero = customer.post(
        f"/orders/{order['id']}/returns",
        json={"lines": [{"product_id": pen.id, "quantity": 0}]},
    )
    assert zero.status_code == 422
    twice = ask_return(customer, order["id"], (pen.id, 1), (pen.id, 1))
    assert twice.status_code == 422
    assert _written(database) == before
    assert ask_return(customer, order["id"], (pen.id, 1)).status_code == 201


def test_only_within_the_return_window(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen, ink, cap = make_product(), make_product(), make_product()
    order = confirmed_order((pen, 1), (ink, 1), (cap, 1))
    # All three shipments first: a delivered one would move the order on (to shipped).
    pens, inks, caps = (new_shipment(admin, order["id"], (p.id, 1)) for p in (pen, ink, cap))
    move_shipment(admin, pens["id"], shipped_days_ago=33, delivered_days_ago=31)
    move_shipment(admin, inks["id"], shipped_days_ago=31, delivered_days_ago=None)
    move_shipment(admin, caps["id"], shipped_days_ago=40, delivered_days_ago=29)
    before = _written(database)
    for product in (pen, ink):
        answer = ask_return(customer, order["id"], (product.id, 1))
        assert answer.status_code == 409, answer.text
        assert answer.json()["type"] == "/problems/return-window-closed"
        assert answer.json()["returnable"] == 0
    assert _written(database) == before
    late_but_delivered_lately = ask_return(customer, order["id"], (cap.id, 1))
    assert late_but_delivered_lately.status_code == 201, late_but_delivered_lately.text


def test_concurrent_returns_of_the_same_units_exactly_one_wins(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen = make_product()
    order = confirmed_order((pen, 2))
    ship(admin, order["id"])
    start = threading.Barrier(8)

    def ask(_: int) -> int:
        with httpx.Client(
            base_url=customer.base_url, headers=customer.headers, timeout=30
        ) as client:
            start.wait()
            return ask_return(client, order["id"], (pen.id, 2)).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = sorted(pool.map(ask, range(8)))
    assert codes == [201] + [409] * 7
    assert admin.get(f"/orders/{order['id']}/returns").json()["total"] == 1

    # One unit each: two win, the rest find nothing left.
    other = confirmed_order((pen, 2))
    ship(admin, other["id"])
    start = threading.Barrier(6)

    def ask_one(_: int) -> int:
        with httpx.Client(
            base_url=customer.base_url, headers=customer.headers, timeout=30
        ) as client:
            start.wait()
            return ask_return(client, other["id"], (pen.id, 1)).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(ask_one, range(6)))
    assert codes == [201, 201] + [409] * 4
    with database.unit_of_work() as session:
        assert [v for v in audit(session) if v.check.startswith("return")] == []


def test_concurrent_receipts_restock_and_refund_once(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen = make_product(price=1000, stock=4)
    order = confirmed_order((pen, 2))
    ship(admin, order["id"])
    return_id = ask_return(customer, order["id"], (pen.id, 2)).json()["id"]
    assert admin.post(f"/returns/{return_id}/approve").status_code == 200
    start = threading.Barrier(6)
    body = {"lines": [{"product_id": pen.id, "quantity": 2, "restock": True}]}

    def receive(_: int) -> int:
        with httpx.Client(base_url=admin.base_url, headers=admin.headers, timeout=30) as client:
            start.wait()
            return client.post(f"/returns/{return_id}/receive", json=body).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(receive, range(6)))
    assert codes == [200] + [409] * 5
    assert admin.get(f"/products/{pen.id}").json()["stock"] == 4
    assert len(admin.get(f"/orders/{order['id']}/refunds").json()) == 1
    with database.unit_of_work() as session:
        restocks = session.execute(
            text("SELECT count(*) FROM stock_ledger WHERE side = 'return'")
        ).scalar_one()
        assert restocks == 1
        checked = ("return", "restock", "stock")
        assert [v for v in audit(session) if v.check.startswith(checked)] == []
