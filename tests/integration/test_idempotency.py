"""Idempotency-Key on POST /orders, exactly as DESIGN.md promises."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import Order, OutboxMessage, Product, User
from tests.conftest import order_body


def _post(client: httpx.Client, key: str, body: dict) -> httpx.Response:
    return client.post("/orders", json=body, headers={"Idempotency-Key": key})


def _count(database: Database, model: type) -> int:
    with database.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_same_key_and_body_replays_the_first_answer(
    customer: httpx.Client, make_product: Callable[..., Product], database: Database
) -> None:
    body = order_body((make_product().id, 2))
    first = _post(customer, "key-1", body)
    second = _post(customer, "key-1", body)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count(database, Order) == 1


def test_same_key_with_another_body_is_422(
    customer: httpx.Client, make_product: Callable[..., Product], database: Database
) -> None:
    product = make_product()
    assert _post(customer, "key-1", order_body((product.id, 1))).status_code == 201
    other = _post(customer, "key-1", order_body((product.id, 2)))
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert _count(database, Order) == 1


def test_keys_are_scoped_to_the_caller(
    make_user: Callable[..., User],
    login_as: Callable[[User], httpx.Client],
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    body = order_body((make_product().id, 1))
    first, second = login_as(make_user()), login_as(make_user())
    a, b = _post(first, "shared", body), _post(second, "shared", body)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers
    assert _count(database, Order) == 2


def test_twenty_concurrent_requests_on_one_key_make_one_order(
    customer: httpx.Client, make_product: Callable[..., Product], database: Database
) -> None:
    body = order_body((make_product().id, 1))
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: _post(customer, "race", body), range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}
    created = [a for a in answers if a.status_code == 201]
    assert len({a.json()["id"] for a in created}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in created) == 1
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.json()["type"] == "/problems/idempotency-key-in-use"
    assert _count(database, Order) == 1
    assert _count(database, OutboxMessage) == 1
    # Once the first request is done, the key replays.
    assert _post(customer, "race", body).headers["idempotent-replayed"] == "true"


def test_a_key_longer_than_255_characters_is_400(
    customer: httpx.Client, make_product: Callable[..., Product], database: Database
) -> None:
    body = order_body((make_product().id, 1))
    answer = _post(customer, "k" * 256, body)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert _post(customer, "k" * 255, body).status_code == 201
    assert _count(database, Order) == 1


def test_a_refused_request_does_not_burn_the_key(
    customer: httpx.Client, make_product: Callable[..., Product], admin: httpx.Client
) -> None:
    product = make_product(stock=1)
    body = order_body((product.id, 2))
    assert _post(customer, "retry-me", body).status_code == 409
    admin.patch(f"/products/{product.id}", json={"stock": 5})
    assert _post(customer, "retry-me", body).status_code == 201


def test_an_admin_ordering_for_a_customer_has_keys_of_their_own(
    customer: httpx.Client,
    admin: httpx.Client,
    client_user: User,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    body = order_body((make_product().id, 1))
    on_behalf = _post(admin, "same-key", {**body, "customer_id": client_user.id})
    own = _post(customer, "same-key", body)
    assert on_behalf.status_code == own.status_code == 201
    assert on_behalf.json()["id"] != own.json()["id"]
    assert _count(database, Order) == 2
