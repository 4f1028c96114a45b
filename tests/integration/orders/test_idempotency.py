"""Idempotency-Key on POST /orders, exactly as DESIGN.md promises."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from orderflow import idempotency
from orderflow.db import Database
from orderflow.errors import IdempotencyKeyInFlight
from orderflow.models import IdempotencyKey, Order, OutboxMessage, Product, User
from tests.conftest import order_body


def _post(client: httpx.Client, key: str, body: dict) -> httpx.Response:
    return client.post("/orders", json=body, headers={"Idempotency-Key": key})


def _count(database: Database, model: type) -> int:
    with database.unit_of_work() as session:
        result = session.scalar(select(func.count()).select_from(model)) or 0
        session.commit()
        return result


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


def test_an_expired_key_is_forgotten_and_acts_again(
    customer: httpx.Client, make_product: Callable[..., Product], database: Database
) -> None:
    product = make_product()
    first = _post(customer, "old-key", order_body((product.id, 1)))
    with database.unit_of_work() as session:
        session.execute(update(IdempotencyKey).values(created_at=func.now() - timedelta(hours=25)))
        session.commit()
    again = _post(customer, "old-key", order_body((product.id, 2)))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert _count(database, Order) == 2
    assert _count(database, IdempotencyKey) == 1


def test_an_answer_stored_between_the_claims_snapshot_and_its_lock_refuses_the_late_one(
    client_user: User, database: Database
) -> None:
    """The claim reads the key in the statement that takes its lock, so it can miss an answer
    committed in that instant; the unique (caller, key) then refuses the late request's own
    answer with 409 (its transaction is rolled back), and a retry replays the first."""
    answer = idempotency.StoredResponse(201, {"id": "ord_first"}, "/api/v1/orders/ord_first")
    late = database.session()
    try:
        assert idempotency.claim(late, client_user.id, "k", "f" * 64, ttl_hours=24) is None
        with database.unit_of_work() as first:
            idempotency.remember(first, client_user.id, "k", "f" * 64, answer)
            first.commit()
        with pytest.raises(IdempotencyKeyInFlight):
            idempotency.remember(late, client_user.id, "k", "f" * 64, answer)
    finally:
        late.rollback()
        late.close()
    with database.unit_of_work() as retry:
        stored = idempotency.claim(retry, client_user.id, "k", "f" * 64, ttl_hours=24)
        retry.commit()
    assert stored == answer
