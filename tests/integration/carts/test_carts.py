"""Carts through HTTP: their life (create, put, change, remove, read live prices, delete),
who may see them, and bad input on every cart route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orderflow.models import Product, User


@pytest.fixture
def products(make_product: Callable[..., Product]) -> tuple[Product, Product]:
    return make_product(price=5025, stock=10), make_product(price=2500, stock=2)


def _new_cart(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/carts", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _lines(cart: dict[str, Any]) -> list[tuple[str, int, int, int, bool]]:
    return [
        (i["product_id"], i["quantity"], i["unit_price"], i["subtotal"], i["in_stock"])
        for i in cart["items"]
    ]


def test_a_cart_lives_created_filled_changed_emptied_and_deleted(
    customer: httpx.Client, admin: httpx.Client, products: tuple[Product, Product]
) -> None:
    mug, tee = products
    created = customer.post("/carts", json={})
    assert created.status_code == 201
    cart = created.json()
    assert created.headers["location"] == f"/api/v1/carts/{cart['id']}"
    assert cart["id"].startswith("cart_")
    assert (cart["status"], cart["items"], cart["total"], cart["order_id"]) == ("open", [], 0, None)
    assert cart["expires_at"] > cart["updated_at"]

    put = customer.put(f"/carts/{cart['id']}/items/{mug.id}", json={"quantity": 2})
    assert put.status_code == 200
    assert _lines(put.json()) == [(mug.id, 2, 5025, 10050, True)]
    assert put.json()["version"] > cart["version"]
    assert put.json()["currency"] == "usd"

    two = customer.put(f"/carts/{cart['id']}/items/{tee.id}", json={"quantity": 3}).json()
    assert _lines(two) == [(mug.id, 2, 5025, 10050, True), (tee.id, 3, 2500, 7500, False)]
    assert (two["subtotal"], two["total"]) == (17550, 17550)

    changed = customer.put(f"/carts/{cart['id']}/items/{mug.id}", json={"quantity": 1}).json()
    assert _lines(changed)[0] == (mug.id, 1, 5025, 5025, True)  # stays first: one line each
    assert changed["version"] > two["version"]

    # the cart shows what the catalogue says now; it holds no stock
    assert admin.patch(f"/products/{mug.id}", json={"price": 6000}).status_code == 200
    assert admin.patch(f"/products/{tee.id}", json={"stock": 5}).status_code == 200
    live = customer.get(f"/carts/{cart['id']}").json()
    assert _lines(live) == [(mug.id, 1, 6000, 6000, True), (tee.id, 3, 2500, 7500, True)]
    assert live["total"] == 13500
    assert live["version"] == changed["version"]  # reading is no change

    removed = customer.delete(f"/carts/{cart['id']}/items/{tee.id}")
    assert removed.status_code == 200
    assert _lines(removed.json()) == [(mug.id, 1, 6000, 6000, True)]
    again = customer.delete(f"/carts/{cart['id']}/items/{tee.id}").json()
    assert again["version"] == removed.json()["version"]  # nothing to remove: no change
    zero = customer.put(f"/carts/{cart['id']}/items/{mug.id}", json={"quantity": 0}).json()
    assert zero["items"] == []

    assert customer.delete(f"/carts/{cart['id']}").status_code == 204
    assert customer.get(f"/carts/{cart['id']}").status_code == 404
    assert customer.delete(f"/carts/{cart['id']}").status_code == 404


def test_a_cart_created_with_items_and_an_archived_product_in_it(
    customer: httpx.Client, admin: httpx.Client, products: tuple[Product, Product]
) -> None:
    mug, tee = products
    cart = _new_cart(
        customer,
        currency="usd",
        items=[{"product_id": tee.id, "quantity": 1}, {"product_id": mug.id, "quantity": 4}],
    )
    assert _lines(cart) == [(tee.id, 1, 2500, 2500, True), (mug.id, 4, 5025, 20100, True)]
    assert admin.delete(f"/products/{tee.id}").status_code == 204
    shown = customer.get(f"/carts/{cart['id']}").json()
    assert _lines(shown)[0] == (tee.id, 1, 2500, 2500, False)  # archived: not available


def test_a_cart_is_its_creators_only(
    customer: httpx.Client,
    admin: httpx.Client,
    login_as: Callable[[User], httpx.Client],
    make_user: Callable[..., User],
    products: tuple[Product, Product],
) -> None:
    mug, _ = products
    cart = _new_cart(customer, items=[{"product_id": mug.id, "quantity": 1}])
    path = f"/carts/{cart['id']}"
    for stranger in (login_as(make_user()), admin):
        answers = [
            stranger.get(path),
            stranger.put(f"{path}/items/{mug.id}", json={"quantity": 5}),
            stranger.delete(f"{path}/items/{mug.id}"),
            stranger.delete(path),
            stranger.post("/orders", json=_checkout_body(cart["id"])),
        ]
        for answer in answers:
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
    assert _lines(customer.get(path).json()) == [(mug.id, 1, 5025, 5025, True)]
    anonymous = httpx.Client(base_url=str(customer.base_url))
    assert anonymous.get(path).status_code == 401
    assert anonymous.post("/carts", json={}).status_code == 401


def test_admins_have_carts_of_their_own(
    admin: httpx.Client, products: tuple[Product, Product]
) -> None:
    cart = _new_cart(admin, items=[{"product_id": products[0].id, "quantity": 1}])
    assert admin.get(f"/carts/{cart['id']}").status_code == 200


def test_unknown_or_archived_products_are_404_naming_them(
    customer: httpx.Client, admin: httpx.Client, products: tuple[Product, Product]
) -> None:
    _, tee = products
    admin.delete(f"/products/{tee.id}")
    cart = _new_cart(customer)
    for product_id in ("prod_missing", tee.id):
        put = customer.put(f"/carts/{cart['id']}/items/{product_id}", json={"quantity": 1})
        assert put.status_code == 404
        assert put.json()["product_id"] == product_id
        created = customer.post(
            "/carts", json={"items": [{"product_id": product_id, "quantity": 1}]}
        )
        assert created.status_code == 404
        assert product_id in created.json()["detail"]
    assert customer.get(f"/carts/{cart['id']}").json()["version"] == cart["version"]


def test_one_currency_a_cart(customer: httpx.Client, make_product: Callable[..., Product]) -> None:
    usd, eur = make_product(currency="usd"), make_product(currency="eur")
    cart = _new_cart(customer, items=[{"product_id": usd.id, "quantity": 1}])
    mixed = customer.put(f"/carts/{cart['id']}/items/{eur.id}", json={"quantity": 1})
    assert mixed.status_code == 409
    assert (mixed.json()["type"], mixed.json()["currency"]) == (
        "/problems/currency-mismatch",
        "usd",
    )
    # once the usd product is gone the cart may take euros
    customer.delete(f"/carts/{cart['id']}/items/{usd.id}")
    assert (
        customer.put(f"/carts/{cart['id']}/items/{eur.id}", json={"quantity": 1}).status_code == 200
    )
    euro = _new_cart(customer, currency="eur")
    assert (
        customer.put(f"/carts/{euro['id']}/items/{usd.id}", json={"quantity": 1}).status_code == 409
    )
    assert euro["currency"] == "eur"
    both = [{"product_id": usd.id, "quantity": 1}, {"product_id": eur.id, "quantity": 1}]
    assert customer.post("/carts", json={"items": both}).status_code == 422
    assert customer.post("/carts", json={"currency": "eur", "items": both[:1]}).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": 1001},
        {"quantity": -1},
        {"quantity": 1.5},
        {"quantity": "2"},
        {"quantity": True},
        {"quantity": None},
        {},
        {"quantity": 1, "unit_price": 1},
        [],
    ],
)
def test_bad_item_quantities_are_422(
    customer: httpx.Client, products: tuple[Product, Product], body: Any
) -> None:
    cart = _new_cart(customer)
    answer = customer.put(f"/carts/{cart['id']}/items/{products[0].id}", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        {"currency": "USD"},
        {"currency": "dollars"},
        {"items": [{"product_id": "prod_x", "quantity": 0}]},
        {"items": [{"product_id": "", "quantity": 1}]},
        {"items": [{"product_id": "p" * 41, "quantity": 1}]},
        {"items": [{"quantity": 1}]},
        {"items": "nope"},
        {"owner": "usr_x"},
        {"items": [{"product_id": f"prod_{n}", "quantity": 1} for n in range(101)]},
    ],
)
def test_bad_cart_bodies_are_422(customer: httpx.Client, body: Any) -> None:
    answer = customer.post("/carts", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_duplicate_products_in_a_new_cart_are_422(
    customer: httpx.Client, products: tuple[Product, Product]
) -> None:
    line = {"product_id": products[0].id, "quantity": 1}
    assert customer.post("/carts", json={"items": [line, line]}).status_code == 422


def test_a_cart_holds_at_most_100_products(
    customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    many = [make_product() for _ in range(101)]
    items = [{"product_id": product.id, "quantity": 1} for product in many[:100]]
    cart = _new_cart(customer, items=items)
    assert len(cart["items"]) == 100
    answer = customer.put(f"/carts/{cart['id']}/items/{many[100].id}", json={"quantity": 1})
    assert answer.status_code == 409
    # changing one already in it is fine
    assert (
        customer.put(f"/carts/{cart['id']}/items/{many[0].id}", json={"quantity": 9}).status_code
        == 200
    )


def test_unknown_carts_are_404(customer: httpx.Client, products: tuple[Product, Product]) -> None:
    for path in ("/carts/cart_nope", "/carts/" + "x" * 300):
        assert customer.get(path).status_code == 404
        assert customer.delete(path).status_code == 404
        assert (
            customer.put(f"{path}/items/{products[0].id}", json={"quantity": 1}).status_code == 404
        )
        assert customer.delete(f"{path}/items/{products[0].id}").status_code == 404


def _checkout_body(cart_id: str, **extra: Any) -> dict[str, Any]:
    from tests.conftest import order_body

    body = order_body(**extra)
    del body["items"]
    return {**body, "cart_id": cart_id}
