"""Returns through the real API and real workers: every status, restock true and false
(stock and ledger), the refund of the received units, a double receive, rejection, who may
do what, the events they write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.models import Product
from tests.integration.returns.conftest import (
    ShippedOrder,
    ask_return,
    receive,
    stock_of,
    wait_for_return,
)
from tests.system import wait_until

pytestmark = pytest.mark.workers


def _ledger(database: Database, product: Product) -> list[tuple[str, int, Any]]:
    with database.unit_of_work() as session:
        rows = session.execute(
            text(
                "SELECT kind, delta, return_line_id FROM stock_ledger"
                " WHERE side = 'return' AND product_id = :p ORDER BY id"
            ),
            {"p": product.id},
        ).all()
    return [(str(kind), int(delta), line) for kind, delta, line in rows]


def _feed(admin: httpx.Client, return_id: str) -> list[str]:
    def all_there() -> bool:
        items = admin.get("/events", params={"types": "return.*", "limit": 100}).json()["items"]
        return any(
            e["subject"]["id"] == return_id and e["data"]["status"] == "refunded" for e in items
        )

    wait_until(all_there, 30)
    items = admin.get("/events", params={"types": "return.*", "limit": 100}).json()["items"]
    mine = [e for e in items if e["subject"]["id"] == return_id]
    assert [e["sequence"] for e in mine] == list(range(1, len(mine) + 1))
    assert all(e["subject"]["type"] == "return" for e in mine)
    assert all(e["data"]["order_id"] == mine[0]["data"]["order_id"] for e in mine)
    # An event's data is the return as GET shows it at that commit: the last one, as now.
    assert mine[-1]["data"] == admin.get(f"/returns/{return_id}").json()
    return [f"{e['type']}:{e['data']['status']}" for e in mine]


def test_a_return_goes_through_every_status(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen, ink = make_product(price=5025, stock=10), make_product(price=700, stock=10)
    order = shipped_order((pen, 3), (ink, 2))
    assert order["status"] == "delivered"
    assert (stock_of(admin, pen), stock_of(admin, ink)) == (7, 8)

    asked = ask_return(customer, order["id"], (pen.id, 2), (ink.id, 1))
    assert asked.status_code == 201, asked.text
    return_ = asked.json()
    assert return_["id"].startswith("ret_")
    assert asked.headers["location"] == f"/api/v1/returns/{return_['id']}"
    assert (return_["status"], return_["order_id"], return_["refund_id"]) == (
        "requested",
        order["id"],
        None,
    )
    assert [(line["product_id"], line["quantity"], line["received_quantity"])
            for line in return_["lines"]] == [(pen.id, 2, None), (ink.id, 1, None)]  # fmt: skip
    assert customer.get(f"/returns/{return_['id']}").json() == return_
    listed = customer.get(f"/orders/{order['id']}/returns").json()
    assert (listed["total"], listed["items"][0]["id"]) == (1, return_["id"])

    approved = admin.post(f"/returns/{return_['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert admin.post(f"/returns/{return_['id']}/approve").json()["status"] == "approved"

    # Two pens came back, one sellable line; the ink came back too, but opened.
    received = receive(admin, return_["id"], (pen.id, 2, True), (ink.id, 1, False))
    assert received.status_code == 200, received.text
    body = received.json()
    assert body["status"] in ("received", "refunded")
    assert body["received_at"] is not None
    assert body["refund_amount"] == 2 * 5025 + 700
    assert [(line["received_quantity"], line["restock"]) for line in body["lines"]] == [
        (2, True),
        (1, False),
    ]
    assert (stock_of(admin, pen), stock_of(admin, ink)) == (9, 8)
    pen_ledger = _ledger(database, pen)
    assert [(kind, delta) for kind, delta, _ in pen_ledger] == [("restock", 2)]
    assert _ledger(database, ink) == []

    refunds = admin.get(f"/orders/{order['id']}/refunds").json()
    assert [(r["id"], r["amount"], r["reason"]) for r in refunds] == [
        (body["refund_id"], 2 * 5025 + 700, f"return {return_['id']}")
    ]
    done = wait_for_return(admin, return_["id"], "refunded")
    assert done["refund_id"] == body["refund_id"]
    settled = admin.get(f"/orders/{order['id']}").json()
    assert settled["refunded_amount"] == 2 * 5025 + 700
    assert settled["payment_status"] == "partially_refunded"
    assert settled["status"] == "delivered"

    assert _feed(admin, return_["id"]) == [
        "return.requested:requested",
        "return.updated:approved",
        "return.received:received",
        "return.updated:refunded",
    ]
    timeline = [e["type"] for e in admin.get(f"/orders/{order['id']}/events").json()["items"]]
    assert [t for t in timeline if t.startswith("return_")] == [
        "return_requested",
        "return_approved",
        "return_received",
        "return_refunded",
    ]
    with database.unit_of_work() as session:
        assert [str(v) for v in audit(session)] == []


def test_a_second_receive_is_409_and_changes_nothing(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen = make_product(price=1000, stock=5)
    order = shipped_order((pen, 2))
    return_id = ask_return(customer, order["id"], (pen.id, 2)).json()["id"]
    assert receive(admin, return_id, (pen.id, 2, True)).status_code == 409  # not approved
    assert admin.post(f"/returns/{return_id}/approve").status_code == 200
    first = receive(admin, return_id, (pen.id, 2, True))
    assert first.status_code == 200, first.text
    again = receive(admin, return_id, (pen.id, 2, True))
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"] == "/problems/transition-not-allowed"
    assert stock_of(admin, pen) == 5
    assert len(_ledger(database, pen)) == 1
    assert len(admin.get(f"/orders/{order['id']}/refunds").json()) == 1
    wait_for_return(admin, return_id, "refunded")
    assert receive(admin, return_id, (pen.id, 1, False)).status_code == 409
    assert admin.post(f"/returns/{return_id}/reject").status_code == 409
    assert stock_of(admin, pen) == 5


def test_a_partial_receipt_refunds_and_restocks_only_what_came_back(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen, ink = make_product(price=1000, stock=5), make_product(price=300, stock=5)
    order = shipped_order((pen, 3), (ink, 1))
    return_id = ask_return(customer, order["id"], (pen.id, 3), (ink.id, 1)).json()["id"]
    admin.post(f"/returns/{return_id}/approve")
    bad = [
        receive(admin, return_id, (pen.id, 4, True)),  # more than asked for
        receive(admin, return_id, (pen.id, 0, True)),  # nothing at all
        receive(admin, return_id, (pen.id, 1, True), (pen.id, 1, True)),  # twice the line
        receive(admin, return_id, (make_product().id, 1, True)),  # not in the return
    ]
    assert [answer.status_code for answer in bad] == [422] * 4
    assert admin.get(f"/returns/{return_id}").json()["status"] == "approved"
    body = receive(admin, return_id, (pen.id, 1, True)).json()  # the ink never came
    assert [(line["received_quantity"], line["restock"]) for line in body["lines"]] == [
        (1, True),
        (0, False),
    ]
    assert body["refund_amount"] == 1000
    assert (stock_of(admin, pen), stock_of(admin, ink)) == (3, 4)
    wait_for_return(admin, return_id, "refunded")
    # What did not come back may be returned again: 3 pens shipped, 1 returned.
    assert ask_return(customer, order["id"], (pen.id, 3)).status_code == 409
    again = ask_return(customer, order["id"], (pen.id, 2), (ink.id, 1))
    assert again.status_code == 201, again.text
    with database.unit_of_work() as session:
        assert [str(v) for v in audit(session)] == []


def test_the_refund_stays_within_what_is_left_to_refund(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    pen = make_product(price=1000, stock=5)
    order = shipped_order((pen, 2))
    first = admin.post(f"/orders/{order['id']}/refunds", json={"amount": 1500, "reason": "x"})
    assert first.status_code == 201, first.text
    return_id = ask_return(customer, order["id"], (pen.id, 1)).json()["id"]
    admin.post(f"/returns/{return_id}/approve")
    body = receive(admin, return_id, (pen.id, 1, False)).json()
    assert body["refund_amount"] == 500  # 1000 worth came back, 500 was left
    wait_for_return(admin, return_id, "refunded")
    wait_until(lambda: admin.get(f"/orders/{order['id']}").json()["refundable_amount"] == 0, 30)

    # Nothing left to refund: the second return is settled at once.
    second = ask_return(customer, order["id"], (pen.id, 1)).json()["id"]
    admin.post(f"/returns/{second}/approve")
    settled = receive(admin, second, (pen.id, 1, True)).json()
    assert (settled["status"], settled["refund_id"], settled["refund_amount"]) == (
        "refunded",
        None,
        0,
    )
    assert stock_of(admin, pen) == 4
    with database.unit_of_work() as session:
        assert [str(v) for v in audit(session)] == []


def test_a_rejected_return_frees_its_units(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    pen = make_product()
    order = shipped_order((pen, 1))
    return_id = ask_return(customer, order["id"], (pen.id, 1)).json()["id"]
    assert ask_return(customer, order["id"], (pen.id, 1)).status_code == 409  # held
    rejected = admin.post(f"/returns/{return_id}/reject", json={"reason": "worn"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["note"]) == ("rejected", "worn")
    assert admin.post(f"/returns/{return_id}/reject").status_code == 200  # again: unchanged
    assert admin.post(f"/returns/{return_id}/approve").status_code == 409
    assert receive(admin, return_id, (pen.id, 1, True)).status_code == 409
    assert ask_return(customer, order["id"], (pen.id, 1)).status_code == 201


def test_who_may_see_and_do_what(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    api: httpx.Client,
    make_user: Callable[..., Any],
    login_as: Callable[..., httpx.Client],
    make_product: Callable[..., Product],
) -> None:
    pen = make_product()
    order = shipped_order((pen, 2))
    stranger = login_as(make_user())
    assert ask_return(stranger, order["id"], (pen.id, 1)).status_code == 404
    by_admin = ask_return(admin, order["id"], (pen.id, 1))
    assert by_admin.status_code == 201, by_admin.text
    return_id = by_admin.json()["id"]
    assert stranger.get(f"/returns/{return_id}").status_code == 404
    assert stranger.get(f"/orders/{order['id']}/returns").status_code == 404
    assert customer.get(f"/returns/{return_id}").status_code == 200
    for action in ("approve", "reject"):
        answer = customer.post(f"/returns/{return_id}/{action}")
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
    assert receive(customer, return_id, (pen.id, 1, True)).status_code == 403
    assert api.get(f"/returns/{return_id}").status_code == 401
    assert admin.get("/returns/ret_missing").status_code == 404


def test_an_idempotency_key_replays_the_return(
    shipped_order: ShippedOrder,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    pen = make_product()
    order = shipped_order((pen, 2))
    first = ask_return(customer, order["id"], (pen.id, 1), **{"Idempotency-Key": "ret-1"})
    again = ask_return(customer, order["id"], (pen.id, 1), **{"Idempotency-Key": "ret-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert customer.get(f"/orders/{order['id']}/returns").json()["total"] == 1
    other = ask_return(customer, order["id"], (pen.id, 2), **{"Idempotency-Key": "ret-1"})
    assert other.status_code == 422
