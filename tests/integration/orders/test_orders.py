"""Orders through HTTP: placement priced from the catalogue, reads, lists, status, cancel."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from orderflow.models import Product
from tests.conftest import order_body


@pytest.fixture
def two_products(make_product: Callable[..., Product]) -> tuple[Product, Product]:
    return make_product(price=5025, stock=10), make_product(price=2500, stock=5)


def _place(client: httpx.Client, *lines: tuple[str, int], **extra: Any) -> httpx.Response:
    return client.post("/orders", json=order_body(*lines, **extra))


def test_place_order_prices_from_the_catalogue(
    customer: httpx.Client, two_products: tuple[Product, Product]
) -> None:
    mug, tee = two_products
    answer = _place(customer, (mug.id, 2), (tee.id, 1))
    assert answer.status_code == 201
    order = answer.json()
    assert answer.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["id"].startswith("ord_")
    assert (order["status"], order["payment_status"]) == ("pending", "unpaid")
    assert (order["subtotal"], order["total"], order["currency"]) == (12550, 12550, "usd")
    assert [
        (i["product_id"], i["quantity"], i["unit_price"], i["subtotal"]) for i in order["items"]
    ] == [(mug.id, 2, 5025, 10050), (tee.id, 1, 2500, 2500)]
    assert order["created_at"].endswith("Z")
    assert customer.get(f"/orders/{order['id']}").json() == order


def test_total_keeps_the_snapshotted_price_after_the_product_changes(
    customer: httpx.Client, admin: httpx.Client, two_products: tuple[Product, Product]
) -> None:
    mug, _ = two_products
    order = _place(customer, (mug.id, 3)).json()
    admin.patch(f"/products/{mug.id}", json={"price": 9999, "name": "Renamed"})
    again = customer.get(f"/orders/{order['id']}").json()
    assert again["total"] == 3 * 5025 == sum(line["subtotal"] for line in again["items"])
    assert again["items"][0]["unit_price"] == 5025
    assert again["items"][0]["name"] == "Test product"


def test_a_client_cannot_send_prices(
    customer: httpx.Client, two_products: tuple[Product, Product]
) -> None:
    body = order_body((two_products[0].id, 1))
    body["items"][0]["unit_price"] = 1
    assert customer.post("/orders", json=body).status_code == 422


def test_unknown_or_archived_product_is_404_naming_it(
    customer: httpx.Client, admin: httpx.Client, two_products: tuple[Product, Product]
) -> None:
    mug, tee = two_products
    missing = _place(customer, (mug.id, 1), ("prod_missing", 1))
    assert missing.status_code == 404
    assert "prod_missing" in missing.json()["detail"]
    admin.delete(f"/products/{tee.id}")
    archived = _place(customer, (tee.id, 1))
    assert archived.status_code == 404
    assert archived.json()["product_id"] == tee.id
    assert customer.get("/orders").json()["total"] == 0


def test_short_stock_is_409(customer: httpx.Client, two_products: tuple[Product, Product]) -> None:
    _, tee = two_products
    answer = _place(customer, (tee.id, 6))
    assert answer.status_code == 409
    assert answer.json()["type"] == "/problems/insufficient-stock"


def test_duplicate_lines_and_mixed_currencies_are_422(
    customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    usd, eur = make_product(currency="usd"), make_product(currency="eur")
    assert _place(customer, (usd.id, 1), (usd.id, 2)).status_code == 422
    assert _place(customer, (usd.id, 1), (eur.id, 1)).status_code == 422


def test_customer_id_is_for_admins_only(
    customer: httpx.Client,
    admin: httpx.Client,
    client_user: Any,
    two_products: tuple[Product, Product],
) -> None:
    mug, _ = two_products
    assert _place(customer, (mug.id, 1), customer_id="usr_other").status_code == 403
    on_behalf = _place(admin, (mug.id, 1), customer_id=client_user.id)
    assert on_behalf.status_code == 201
    assert on_behalf.json()["customer_id"] == client_user.id
    assert customer.get("/orders").json()["total"] == 1
    assert _place(admin, (mug.id, 1), customer_id="usr_nobody").status_code == 404


def test_list_filters_and_customer_route(
    customer: httpx.Client,
    admin: httpx.Client,
    client_user: Any,
    login_as: Callable,
    make_user: Callable,
    two_products: tuple[Product, Product],
) -> None:
    mug, _ = two_products
    mine = [_place(customer, (mug.id, 1)).json() for _ in range(3)]
    other = login_as(make_user())
    theirs = _place(other, (mug.id, 1)).json()
    assert (
        admin.put(f"/orders/{mine[0]['id']}/status", json={"status": "cancelled"}).status_code
        == 200
    )

    assert customer.get("/orders").json()["total"] == 3
    assert [o["id"] for o in customer.get("/orders").json()["items"]] == [
        o["id"] for o in reversed(mine)
    ]
    assert customer.get("/orders", params={"status": "cancelled"}).json()["total"] == 1
    assert (
        customer.get("/orders", params={"customer_id": theirs["customer_id"]}).json()["total"] == 0
    )
    assert admin.get("/orders").json()["total"] == 4
    assert admin.get("/orders", params={"customer_id": client_user.id}).json()["total"] == 3
    created = mine[1]["created_at"]
    assert admin.get("/orders", params={"created_after": created}).json()["total"] == 3
    assert admin.get("/orders", params={"created_before": created}).json()["total"] == 1
    assert customer.get("/orders", params={"status": "lost"}).status_code == 422

    assert customer.get(f"/customers/{client_user.id}/orders").json()["total"] == 3
    assert admin.get(f"/customers/{client_user.id}/orders").json()["total"] == 3
    assert customer.get(f"/customers/{theirs['customer_id']}/orders").status_code == 404


def test_cancel_is_repeatable_then_409_once_shipped(
    customer: httpx.Client, admin: httpx.Client, two_products: tuple[Product, Product]
) -> None:
    mug, _ = two_products
    order = _place(customer, (mug.id, 1)).json()
    assert customer.delete(f"/orders/{order['id']}").status_code == 204
    assert customer.delete(f"/orders/{order['id']}").status_code == 204
    assert customer.get(f"/orders/{order['id']}").json()["status"] == "cancelled"
    events = customer.get(f"/orders/{order['id']}/events").json()
    assert [e["type"] for e in events["items"]] == ["order_placed", "status_changed"]
    assert events["items"][1]["data"] == {
        "from": "pending",
        "to": "cancelled",
        "reason": "cancelled_by_customer",
    }


def test_admin_status_changes_follow_the_state_machine(
    admin: httpx.Client,
    customer: httpx.Client,
    database: Any,
    two_products: tuple[Product, Product],
) -> None:
    from sqlalchemy import update

    from orderflow.models import Order

    mug, _ = two_products
    order_id = _place(customer, (mug.id, 1)).json()["id"]

    def put(status: str) -> int:
        return admin.put(f"/orders/{order_id}/status", json={"status": status}).status_code

    # pending: only the pipeline confirms or fails it; shipping needs a confirmed order.
    assert [put(s) for s in ("confirmed", "failed", "shipped", "delivered", "pending")] == [409] * 5
    assert put("teleported") == 422
    with database.unit_of_work() as session:  # the pipeline's confirmation, by hand
        session.execute(update(Order).where(Order.id == order_id).values(status="confirmed"))
        session.commit()
    assert [put(s) for s in ("pending", "confirmed", "failed", "delivered")] == [409] * 4
    assert put("shipped") == 200
    assert [put(s) for s in ("pending", "confirmed", "failed", "shipped", "cancelled")] == [409] * 5
    assert customer.delete(f"/orders/{order_id}").status_code == 409
    assert put("delivered") == 200
    assert [
        put(s) for s in ("pending", "confirmed", "failed", "shipped", "cancelled", "delivered")
    ] == [409] * 6
    assert (
        customer.put(f"/orders/{order_id}/status", json={"status": "delivered"}).status_code == 403
    )
    statuses = [
        (e["data"]["from"], e["data"]["to"])
        for e in admin.get(f"/orders/{order_id}/events").json()["items"]
        if e["type"] == "status_changed"
    ]
    assert statuses == [("confirmed", "shipped"), ("shipped", "delivered")]


def test_more_concurrent_orders_than_threads_and_connections_are_all_accepted(
    customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    """160 orders from 80 clients at once: more than the API's worker threads (40) and pooled
    connections (20). Each request waits its turn for a session; none fails or times out.
    (Before sessions were capped, this deadlocked until the pool timed out and answered 500.)"""
    product = make_product(stock=1000)
    with ThreadPoolExecutor(max_workers=80) as clients:
        answers = list(clients.map(lambda _: _place(customer, (product.id, 1)), range(160)))
    assert [answer.status_code for answer in answers] == [201] * 160
    assert len({answer.json()["id"] for answer in answers}) == 160
