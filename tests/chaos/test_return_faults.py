"""Returns and partial refunds while workers are killed: every received return restocks
once and is refunded once, no refund exceeds the capture, and every promise holds at rest."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import httpx
from sqlalchemy import text

from orderflow.auth.service import ensure_admin, login
from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem
from tests.system import wait_until

ADMIN_EMAIL, ADMIN_PASSWORD = "chaos-admin@example.com", "chaos-admin-pass-1"


def _admin(chaos: ChaosSystem) -> httpx.Client:
    with chaos.database.unit_of_work() as session:
        ensure_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
        session.commit()
    with chaos.database.unit_of_work() as session:
        token = login(session, chaos.settings, ADMIN_EMAIL, ADMIN_PASSWORD).access_token
        session.commit()
    return httpx.Client(
        base_url=f"{chaos.api_url}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _confirmed(chaos: ChaosSystem) -> list[str]:
    with chaos.database.unit_of_work() as session:
        rows = session.execute(text("SELECT id FROM orders WHERE status = 'confirmed'")).all()
    return sorted(str(row[0]) for row in rows)


def test_returns_and_refunds_while_pool_processes_are_killed(chaos: ChaosSystem) -> None:
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers()
    shoppers.run(max(CHAOS_ORDERS // 2, 12))
    wait_until(lambda: len(_confirmed(chaos)) >= 4, 120)
    admin = _admin(chaos)

    stop = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        rng = random.Random(5)
        while not stop.is_set():
            pool = chaos.processes.pool_pids("worker")
            if pool:
                os.kill(rng.choice(pool), signal.SIGKILL)  # the parent forks a new one
                kills += 1
            time.sleep(0.5)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    received: list[str] = []
    try:
        for index, order_id in enumerate(_confirmed(chaos)):
            order = admin.get(f"/orders/{order_id}").json()
            assert admin.put(f"/orders/{order_id}/status", json={"status": "shipped"}).is_success
            line = order["items"][0]
            asked = admin.post(
                f"/orders/{order_id}/returns",
                json={"lines": [{"product_id": line["product_id"], "quantity": 1}]},
            )
            assert asked.status_code == 201, asked.text
            return_id = asked.json()["id"]
            assert admin.post(f"/returns/{return_id}/approve").status_code == 200
            if index % 3 == 0:  # a partial refund by hand races the return's own
                admin.post(f"/orders/{order_id}/refunds", json={"amount": 100, "reason": "sorry"})
            body = {"lines": [{"product_id": line["product_id"], "quantity": 1,
                               "restock": index % 2 == 0}]}  # fmt: skip
            answer = admin.post(f"/returns/{return_id}/receive", json=body)
            assert answer.status_code == 200, answer.text
            again = admin.post(f"/returns/{return_id}/receive", json=body)
            assert again.status_code == 409
            received.append(return_id)
    finally:
        time.sleep(2)
        stop.set()
        thread.join()

    def all_refunded() -> bool:
        return all(admin.get(f"/returns/{r}").json()["status"] == "refunded" for r in received)

    chaos.processes.revive_exited()
    wait_until(all_refunded, 150)
    statuses = chaos.settle_and_check(shoppers)
    assert kills >= 3
    assert statuses.get("shipped", 0) >= 4
    with chaos.database.unit_of_work() as session:
        restocks = session.execute(
            text("SELECT count(*) FROM stock_ledger WHERE side = 'return'")
        ).scalar_one()
    assert restocks == len(received[::2])
    admin.close()
