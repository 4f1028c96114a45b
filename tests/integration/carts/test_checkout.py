"""Checkout: ``POST /orders {cart_id, …}`` through the one intake path. Prices snapshotted at
checkout, the cart completed with its order in the same transaction, ``expected_total``,
and at most one order per cart whatever the concurrency (threads, processes, retries)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import Order, OutboxMessage, Product
from tests.conftest import order_body


def checkout_body(cart_id: str, **extra: Any) -> dict[str, Any]:
    body = order_body()
    del body["items"]
    return {**body, "cart_id": cart_id, **extra}


@pytest.fixture
def products(make_product: Callable[..., Product]) -> tuple[Product, Product]:
    return make_product(price=5025, stock=10), make_product(price=2500, stock=5)


@pytest.fixture
def cart(customer: httpx.Client, products: tuple[Product, Product]) -> dict[str, Any]:
    mug, tee = products
    items = [{"product_id": mug.id, "quantity": 2}, {"product_id": tee.id, "quantity": 1}]
    answer = customer.post("/carts", json={"items": items})
    assert answer.status_code == 201
    return answer.json()


def _orders_in(database: Database) -> int:
    with database.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def test_checkout_orders_the_cart_at_todays_prices_and_completes_it(
    customer: httpx.Client,
    admin: httpx.Client,
    products: tuple[Product, Product],
    cart: dict[str, Any],
) -> None:
    mug, tee = products
    assert admin.patch(f"/products/{mug.id}", json={"price": 6000}).status_code == 200
    answer = customer.post("/orders", json=checkout_body(cart["id"]))
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert answer.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["cart_id"] == cart["id"]
    assert [(i["product_id"], i["quantity"], i["unit_price"]) for i in order["items"]] == [
        (mug.id, 2, 6000),
        (tee.id, 1, 2500),
    ]
    assert order["total"] == 14500
    assert customer.get(f"/orders/{order['id']}").json() == order

    completed = customer.get(f"/carts/{cart['id']}").json()
    assert (completed["status"], completed["order_id"]) == ("completed", order["id"])
    assert completed["version"] > cart["version"]

    events = customer.get(f"/orders/{order['id']}/events").json()["items"]
    assert events[0]["type"] == "order_placed"
    assert events[0]["data"]["cart_id"] == cart["id"]

    # the order keeps its snapshot; the completed cart no longer changes
    admin.patch(f"/products/{mug.id}", json={"price": 1})
    assert customer.get(f"/orders/{order['id']}").json()["total"] == 14500
    for refused in (
        customer.put(f"/carts/{cart['id']}/items/{mug.id}", json={"quantity": 5}),
        customer.delete(f"/carts/{cart['id']}/items/{mug.id}"),
        customer.post("/orders", json=checkout_body(cart["id"])),
    ):
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/cart-completed"
        assert refused.json()["order_id"] == order["id"]
        assert order["id"] in refused.json()["detail"]
    assert customer.get("/orders").json()["total"] == 1


def test_an_order_from_items_has_no_cart(
    customer: httpx.Client, products: tuple[Product, Product]
) -> None:
    order = customer.post("/orders", json=order_body((products[0].id, 1))).json()
    assert order["cart_id"] is None
    events = customer.get(f"/orders/{order['id']}/events").json()["items"]
    assert events[0]["data"]["cart_id"] is None


def test_expected_total_that_no_longer_holds_is_409_and_writes_nothing(
    customer: httpx.Client,
    admin: httpx.Client,
    clean_database: Database,
    products: tuple[Product, Product],
    cart: dict[str, Any],
) -> None:
    mug, tee = products
    shown = cart["total"]
    assert shown == 2 * 5025 + 2500
    admin.patch(f"/products/{mug.id}", json={"price": 5500})
    key = {"Idempotency-Key": "price-guard-1"}
    refused = customer.post(
        "/orders", json=checkout_body(cart["id"], expected_total=shown), headers=key
    )
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == "/problems/price-changed"
    assert (problem["expected_total"], problem["current_total"]) == (shown, 13500)
    assert problem["lines"] == [
        {"product_id": mug.id, "quantity": 2, "expected_unit_price": 5025,
         "current_unit_price": 5500},
        {"product_id": tee.id, "quantity": 1, "expected_unit_price": 2500,
         "current_unit_price": 2500},
    ]  # fmt: skip
    assert _orders_in(clean_database) == 0
    with clean_database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert customer.get(f"/carts/{cart['id']}").json()["status"] == "open"

    # the client shows the new total and confirms it (a new body: a new key)
    current = customer.get(f"/carts/{cart['id']}").json()["total"]
    placed = customer.post(
        "/orders",
        json=checkout_body(cart["id"], expected_total=current),
        headers={"Idempotency-Key": "price-guard-2"},
    )
    assert placed.status_code == 201
    assert placed.json()["total"] == 13500


def test_checkout_refusals_leave_the_cart_open(
    customer: httpx.Client,
    admin: httpx.Client,
    clean_database: Database,
    products: tuple[Product, Product],
    cart: dict[str, Any],
) -> None:
    _, tee = products
    admin.patch(f"/products/{tee.id}", json={"stock": 0})
    short = customer.post("/orders", json=checkout_body(cart["id"]))
    assert (short.status_code, short.json()["type"]) == (409, "/problems/insufficient-stock")
    admin.delete(f"/products/{tee.id}")
    archived = customer.post("/orders", json=checkout_body(cart["id"]))
    assert archived.status_code == 404
    assert archived.json()["product_id"] == tee.id
    assert customer.get(f"/carts/{cart['id']}").json()["status"] == "open"
    assert _orders_in(clean_database) == 0

    empty = customer.post("/carts", json={}).json()
    answer = customer.post("/orders", json=checkout_body(empty["id"]))
    assert answer.status_code == 422
    assert customer.post("/orders", json=checkout_body("cart_nope")).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"items": [{"product_id": "prod_x", "quantity": 1}]},  # both items and cart_id
        {"cart_id": None},  # neither
        {"customer_id": "usr_someone"},  # a cart's order is its owner's
        {"expected_total": -1},
        {"expected_total": 1.5},
        {"expected_total": "10"},
        {"cart_id": ""},
        {"cart_id": "c" * 41},
    ],
)
def test_bad_checkout_bodies_are_422(
    customer: httpx.Client, cart: dict[str, Any], change: dict[str, Any]
) -> None:
    answer = customer.post("/orders", json={**checkout_body(cart["id"]), **change})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"]
    assert customer.get(f"/carts/{cart['id']}").json()["status"] == "open"


def test_expected_total_is_for_carts_only(
    customer: httpx.Client, products: tuple[Product, Product]
) -> None:
    body = order_body((products[0].id, 1), expected_total=5025)
    answer = customer.post("/orders", json=body)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["expected_total"]


def test_a_lost_answer_retried_with_its_key_replays_the_order(
    customer: httpx.Client, clean_database: Database, cart: dict[str, Any]
) -> None:
    body, key = checkout_body(cart["id"]), {"Idempotency-Key": "checkout-7f3a"}
    first = customer.post("/orders", json=body, headers=key)  # the client never saw this
    assert first.status_code == 201
    retried = customer.post("/orders", json=body, headers=key)
    assert retried.status_code == 201
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == first.json()
    assert _orders_in(clean_database) == 1
    other_key = customer.post("/orders", json=body, headers={"Idempotency-Key": "another"})
    assert other_key.status_code == 409
    assert other_key.json()["order_id"] == first.json()["id"]


def _post(client: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return client.post("/orders", json=body, headers=headers)


@pytest.mark.parametrize("same_key", [False, True])
def test_concurrent_checkouts_from_threads_make_one_order(
    customer: httpx.Client, clean_database: Database, cart: dict[str, Any], same_key: bool
) -> None:
    """20 checkouts of one cart at once over HTTP, each on its own connection: one 201; the
    others 409 naming that order (a different key), or, all under the first one's key,
    409 key in use while it runs or its 201 replayed."""
    clients = 20
    body = checkout_body(cart["id"])
    start = threading.Barrier(clients)

    def checkout(number: int) -> httpx.Response:
        key = "one-key" if same_key else f"key-{number}"
        with httpx.Client(base_url=customer.base_url, headers=customer.headers, timeout=60) as c:
            start.wait()
            return _post(c, body, {"Idempotency-Key": key})

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(checkout, range(clients)))
    _assert_one_order(
        [(a.status_code, a.json(), a.headers.get("idempotent-replayed")) for a in answers],
        same_key,
    )
    assert _orders_in(clean_database) == 1
    if same_key:  # a retry once everything settled: the one order again
        again = _post(customer, body, {"Idempotency-Key": "one-key"})
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"


def _assert_one_order(
    answers: list[tuple[int, dict[str, Any], str | None]], same_key: bool
) -> None:
    created = [body for status, body, replayed in answers if status == 201 and not replayed]
    assert len(created) == 1, [(s, b.get("type")) for s, b, _ in answers]
    order_id = created[0]["id"]
    for status, body, replayed in answers:
        if status == 201:
            assert body["id"] == order_id
            assert replayed == "true" or body is created[0]
        elif same_key:
            assert (status, body["type"]) == (409, "/problems/idempotency-key-in-use"), body
        else:
            assert (status, body["type"], body["order_id"]) == (
                409,
                "/problems/cart-completed",
                order_id,
            ), body


_CHECKOUT_PROCESS = """
import json, sys, time
import httpx
url, token, body, key, at = sys.argv[1:6]
time.sleep(max(0.0, float(at) - time.time()))
answer = httpx.post(url, json=json.loads(body), timeout=60,
                    headers={"Authorization": token, "Idempotency-Key": key})
print(json.dumps([answer.status_code, answer.json()]))
"""


def test_concurrent_checkouts_from_processes_make_one_order(
    customer: httpx.Client, clean_database: Database, cart: dict[str, Any]
) -> None:
    """The same from 20 processes, each posting at one agreed instant."""
    clients = 20
    url = f"{customer.base_url}/orders".replace("//orders", "/orders")
    at = time.time() + 4  # after every process has started and imported httpx
    body = json.dumps(checkout_body(cart["id"]))
    token = customer.headers["Authorization"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CHECKOUT_PROCESS, url, token, body, f"p{n}", str(at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(clients)
    ]
    answers = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        status, answer = json.loads(out)
        answers.append((status, answer, None))
    _assert_one_order(answers, same_key=False)
    assert _orders_in(clean_database) == 1
