"""Hundreds of orders from concurrent clients with mixed payment methods and cancellations,
through real workers, end at rest with every promise kept."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select, text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.models import Order, Product, StockReservation
from tests.conftest import order_body
from tests.system import SystemProcesses, wait_until

ORDERS = 220
CLIENTS = 20
METHODS = ["pm_card_visa"] * 7 + [
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_authenticationRequired",
]


def _at_rest(database: Database) -> bool:
    """Every order confirmed, failed or cancelled, or waiting on its customer's action, and
    every e-mail and refund it is owed delivered (the audit is clean)."""
    with database.unit_of_work() as session:
        moving = session.scalar(
            text(
                """SELECT count(*) FROM orders o WHERE o.status = 'pending' AND NOT EXISTS (
                     SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.kind = 'charge'
                     AND p.status = 'requires_action')"""
            )
        )
        return moving == 0 and not audit(session)


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

    wait_until(lambda: _at_rest(database), timeout=180, interval=0.5)

    with database.unit_of_work() as session:
        assert audit(session) == []
        assert session.scalar(select(func.count()).select_from(Order)) == len(accepted)
        for product_id, start in initial.items():
            left = session.get(Product, product_id).stock  # type: ignore[union-attr]
            held = session.scalar(
                select(func.coalesce(func.sum(StockReservation.quantity), 0)).where(
                    StockReservation.product_id == product_id,
                    StockReservation.released_at.is_(None),
                )
            )
            assert left >= 0
            assert left + held == start, product_id
        captured, confirmed_total = session.execute(
            text(
                """SELECT
                     (SELECT coalesce(sum(amount), 0) FROM payments
                       WHERE kind = 'charge' AND status = 'succeeded')
                     - (SELECT coalesce(sum(amount), 0) FROM payments
                       WHERE kind = 'refund' AND status = 'succeeded'),
                     (SELECT coalesce(sum(total_amount), 0) FROM orders
                       WHERE status = 'confirmed')"""
            )
        ).one()
        assert captured == confirmed_total
        statuses = dict(
            session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
        )
    assert statuses.get("confirmed", 0) > 0
    assert statuses.get("failed", 0) > 0
    assert statuses.get("cancelled", 0) > 0
