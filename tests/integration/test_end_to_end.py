"""Hundreds of orders from concurrent clients with mixed payment methods and cancellations,
through real workers, end at rest with every promise kept."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from orderflow.db import Database
from orderflow.models import Product
from tests.conftest import order_body
from tests.invariants import assert_promises_kept, wait_for_rest
from tests.system import SystemProcesses

pytestmark = pytest.mark.workers

ORDERS = 220
CLIENTS = 20
METHODS = ["pm_card_visa"] * 7 + [
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_authenticationRequired",
]


def test_two_hundred_orders_from_twenty_clients_keep_every_promise(
    local_pipeline: SystemProcesses,
    make_user: Callable[..., Any],
    login_as: Callable[..., httpx.Client],
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    rng = random.Random(20261123)
    products = [make_product(price=rng.randint(100, 9000), stock=40) for _ in range(5)]
    initial = {product.id: 40 for product in products}
    clients = [login_as(make_user()) for _ in range(CLIENTS)]

    def shop(index: int) -> tuple[int, str | None]:
        client = clients[index % CLIENTS]
        picked = rng.sample(products, rng.randint(1, 3))
        body = order_body(
            *[(p.id, rng.randint(1, 3)) for p in picked], payment_method=rng.choice(METHODS)
        )
        answer = client.post("/orders", json=body, headers={"Idempotency-Key": f"e2e-{index}"})
        if answer.status_code == 201 and index % 15 == 0:
            client.delete(f"/orders/{answer.json()['id']}")  # changed their mind
        return answer.status_code, answer.json().get("id")

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(shop, range(ORDERS)))
    assert {status for status, _ in answers} <= {201, 409}  # 409: already short at intake
    accepted = [order_id for status, order_id in answers if status == 201]
    assert len(accepted) >= 100

    wait_for_rest(database, 180)
    statuses = assert_promises_kept(database, initial, set(accepted))
    assert statuses.get("confirmed", 0) > 0
    assert statuses.get("failed", 0) > 0
    assert statuses.get("cancelled", 0) > 0
