"""Nobody reaches what is not theirs: another client's order is a 404, strangers get 401."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from orderflow.models import Product, User
from tests.conftest import order_body

ORDER_ROUTES = [
    ("GET", "/orders/{id}"),
    ("GET", "/orders/{id}/events"),
    ("DELETE", "/orders/{id}"),
]


@pytest.fixture
def someone_elses_order(
    make_user: Callable[..., User],
    login_as: Callable[[User], httpx.Client],
    make_product: Callable[..., Product],
) -> str:
    owner = login_as(make_user())
    answer = owner.post("/orders", json=order_body((make_product().id, 1)))
    assert answer.status_code == 201
    return str(answer.json()["id"])


@pytest.mark.parametrize(("method", "path"), ORDER_ROUTES)
def test_another_clients_order_is_404(
    customer: httpx.Client, someone_elses_order: str, method: str, path: str
) -> None:
    answer = customer.request(method, path.format(id=someone_elses_order))
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path"), [*ORDER_ROUTES, ("GET", "/orders")])
def test_anonymous_is_401(
    api: httpx.Client, someone_elses_order: str, method: str, path: str
) -> None:
    assert api.request(method, path.format(id=someone_elses_order)).status_code == 401


def test_the_order_was_left_alone(
    customer: httpx.Client, admin: httpx.Client, someone_elses_order: str
) -> None:
    customer.delete(f"/orders/{someone_elses_order}")
    assert admin.get(f"/orders/{someone_elses_order}").json()["status"] == "pending"
    assert customer.get("/orders").json()["total"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/products", {"sku": "A", "name": "a", "price": 1, "currency": "usd"}),
        ("PATCH", "/products/prod_x", {"stock": 1}),
        ("DELETE", "/products/prod_x", None),
        ("PUT", "/orders/ord_x/status", {"status": "shipped"}),
    ],
)
def test_admin_routes_are_403_for_clients_and_401_for_strangers(
    customer: httpx.Client, api: httpx.Client, method: str, path: str, body: dict | None
) -> None:
    assert customer.request(method, path, json=body).status_code == 403
    assert api.request(method, path, json=body).status_code == 401
