"""Products: public reads, admin writes, archive, pagination bounds."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from orderflow.models import Product

NEW = {
    "sku": "MUG-42",
    "name": "Mug",
    "description": "Blue",
    "price": 1250,
    "currency": "usd",
    "stock": 7,
}


def test_admin_creates_patches_and_archives(admin: httpx.Client, api: httpx.Client) -> None:
    created = admin.post("/products", json=NEW)
    assert created.status_code == 201
    product = created.json()
    assert product == {**NEW, "id": product["id"], "active": True}
    assert created.headers["location"] == f"/api/v1/products/{product['id']}"

    patched = admin.patch(f"/products/{product['id']}", json={"price": 1500, "stock": 3})
    assert patched.status_code == 200
    assert (patched.json()["price"], patched.json()["stock"]) == (1500, 3)

    assert api.get(f"/products/{product['id']}").json()["price"] == 1500
    assert admin.delete(f"/products/{product['id']}").status_code == 204
    assert api.get("/products").json()["total"] == 0
    assert api.get(f"/products/{product['id']}").json()["active"] is False


def test_duplicate_sku_is_409_on_create_and_on_patch(admin: httpx.Client) -> None:
    first = admin.post("/products", json=NEW).json()
    assert admin.post("/products", json=NEW).status_code == 409
    other = admin.post("/products", json={**NEW, "sku": "MUG-43"}).json()
    clash = admin.patch(f"/products/{other['id']}", json={"sku": first["sku"]})
    assert clash.status_code == 409
    assert clash.json()["type"] == "/problems/conflict"


def test_clients_are_forbidden_and_strangers_unauthenticated(
    customer: httpx.Client, api: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    for client, status in ((customer, 403), (api, 401)):
        assert client.post("/products", json=NEW).status_code == status
        assert client.patch(f"/products/{product.id}", json={"stock": 1}).status_code == status
        assert client.delete(f"/products/{product.id}").status_code == status
    assert customer.get(f"/products/{product.id}").json()["stock"] == product.stock


def test_unknown_product_is_a_404_problem(api: httpx.Client) -> None:
    answer = api.get("/products/prod_nope")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "product prod_nope does not exist"


def test_pagination_defaults_and_bounds(
    api: httpx.Client, make_product: Callable[..., Product]
) -> None:
    for _ in range(25):
        make_product()
    first = api.get("/products").json()
    assert (len(first["items"]), first["total"], first["limit"], first["offset"]) == (20, 25, 20, 0)
    rest = api.get("/products", params={"offset": 20, "limit": 100}).json()
    assert len(rest["items"]) == 5
    assert {p["id"] for p in first["items"]}.isdisjoint({p["id"] for p in rest["items"]})
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "many"}):
        answer = api.get("/products", params=params)
        assert answer.status_code == 422, params
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {**NEW, "price": -1},
        {**NEW, "price": 12.5},
        {**NEW, "price": "1250"},
        {**NEW, "stock": -3},
        {**NEW, "currency": "USD"},
        {**NEW, "sku": ""},
        {**NEW, "sku": "has space"},
        {**NEW, "colour": "blue"},
        {k: v for k, v in NEW.items() if k != "name"},
    ],
)
def test_invalid_products_are_422_and_not_written(admin: httpx.Client, body: dict) -> None:
    answer = admin.post("/products", json=body)
    assert answer.status_code == 422
    assert answer.json()["errors"]
    assert admin.get("/products").json()["total"] == 0
