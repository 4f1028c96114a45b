"""Shipping through Shippo's SDK to the stand-in while it fails: labels bought while it
answers 500, hangs, and buys a label then never answers, with the workers buying them killed;
then tracking webhooks duplicated and out of order while its tracking reads fail. At most
one label per shipment at the provider, every order delivered, its history forward only, and
``orderflow audit`` clean."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text

from orderflow.models import Order
from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem
from tests.stubs import SHIPPO_WEBHOOK_TOKEN
from tests.stubs.shippo_server import ShippoStub
from tests.system import wait_until


def _confirmed(chaos: ChaosSystem) -> list[str]:
    with chaos.database.unit_of_work() as session:
        found = session.scalars(
            select(Order.id).where(Order.status == "confirmed").order_by(Order.id)
        ).all()
        session.commit()
    return list(found)


def _shipments(chaos: ChaosSystem) -> list[tuple[str, str, str, str | None]]:
    """(shipment, order, label_status, tracking number) of every shipment."""
    with chaos.database.unit_of_work() as session:
        rows = session.execute(
            text("SELECT id, order_id, label_status, tracking_number FROM shipments ORDER BY id")
        ).all()
        session.commit()
    return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def _label_failures(chaos: ChaosSystem) -> list[str]:
    """Why labels were given up, as their ``label_failed`` events say."""
    with chaos.database.unit_of_work() as session:
        reasons = session.scalars(
            text("SELECT data->>'reason' FROM order_events WHERE type = 'label_failed'")
        ).all()
        session.commit()
    return [str(reason) for reason in reasons]


def _ship_all(api: httpx.Client, order_ids: list[str], pace: float) -> None:
    """An admin ships each order in full with a bought label, retrying a lost answer with
    the same Idempotency-Key."""
    for order_id in order_ids:
        for _ in range(20):
            try:
                answer = api.post(
                    f"/orders/{order_id}/shipments",
                    json={"buy_label": True},
                    headers={"Idempotency-Key": f"ship-{order_id}"},
                )
            except httpx.TransportError:
                continue
            if answer.status_code in (200, 201):
                break
            assert answer.status_code == 409, answer.text
            assert answer.json()["type"] == "/problems/idempotency-key-in-use", answer.text
            time.sleep(0.2)
        time.sleep(pace)


def test_labels_and_tracking_through_provider_faults_and_killed_workers(
    chaos_with_shippo: ChaosSystem, shippo_stub: ShippoStub
) -> None:
    chaos = chaos_with_shippo
    # Stock for every order (the default runs out near a hundred orders): half of them at
    # least must reach confirmed to be shipped, whatever ORDERFLOW_CHAOS_ORDERS says.
    chaos.stock_up(stock=max(60, 3 * CHAOS_ORDERS))
    chaos.start()
    shoppers = chaos.shoppers(methods=["pm_card_visa"])
    shoppers.run(CHAOS_ORDERS)
    chaos.settle_and_check(shoppers)
    orders = _confirmed(chaos)
    assert len(orders) >= CHAOS_ORDERS // 2
    headers = {"Authorization": f"Bearer {chaos.admin_token()}"}
    api = httpx.Client(base_url=f"{chaos.api_url}/api/v1", headers=headers, timeout=15)

    # Labels: the admin ships every order while Shippo fails in turn.
    shipping = threading.Thread(target=_ship_all, args=(api, orders, 0.25), daemon=True)
    shipping.start()
    rng = random.Random(16)
    shippo_stub.wait_for_requests(1, timeout=90)  # the first purchase has begun
    shippo_stub.set_mode("500")
    time.sleep(1.5)
    shippo_stub.set_mode("hang", seconds=3.0)
    time.sleep(1.5)
    shippo_stub.set_mode("ok")
    while shipping.is_alive():
        # A label bought whose answer never comes back; the workers waiting for it die.
        shippo_stub.lose_next_purchase_answer = True
        time.sleep(0.8)
        for pid in chaos.processes.pool_pids("worker"):
            if rng.random() < 0.7:
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.7)
    shipping.join(120)
    shippo_stub.clear_faults()

    def labels_settled() -> bool:
        found = _shipments(chaos)
        return len(found) == len(orders) and all(s[2] != "pending" for s in found)

    wait_until(labels_settled, 150, interval=0.5)
    shipments = _shipments(chaos)
    assert {s[1] for s in shipments} == set(orders)
    not_bought = [s for s in shipments if s[2] != "purchased"]
    assert not_bought == [], _label_failures(chaos)
    for shipment_id, _, _, _ in shipments:
        assert shippo_stub.labels_for(shipment_id) == 1, shipment_id
    assert len(shippo_stub.transactions) == len(shipments)
    assert shippo_stub.lost_purchase_answers > 0
    assert shippo_stub.count(faulted=True) > 0

    # Tracking: the carrier's scans reach Shippo in three rounds, the last a late scan dated
    # before the delivery; each round's webhooks come twice or thrice, shuffled, while
    # Shippo's tracking answers 500 or hangs now and then.
    start = datetime.now(UTC) + timedelta(minutes=1)

    def at(minutes: int) -> str:
        return (start + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    numbers = [str(s[3]) for s in shipments]
    rounds: list[tuple[str, str | None, str]] = [
        ("TRANSIT", None, at(1)),
        ("DELIVERED", None, at(3)),
        ("TRANSIT", "out_for_delivery", at(2)),
    ]
    hooks = httpx.Client(base_url=f"{chaos.api_url}/api/v1", timeout=15)

    def webhook(number: str) -> int:
        body: dict[str, Any] = {
            "event": "track_updated",
            "test": True,
            "data": {"carrier": "usps", "tracking_number": number,
                     "tracking_status": {"status": "DELIVERED"}},  # the body is never trusted
        }  # fmt: skip
        return hooks.post(f"/webhooks/shippo?token={SHIPPO_WEBHOOK_TOKEN}", json=body).status_code

    def each_shipment(check: str) -> bool:
        with chaos.database.unit_of_work() as session:
            failing = session.scalar(text(f"SELECT count(*) FROM shipments WHERE NOT ({check})"))
            session.commit()
        return failing == 0

    # After each round, until every shipment shows it: the late scan comes after the delivery.
    shows = [
        "status = 'in_transit'",
        "status = 'delivered'",
        "(SELECT count(*) FROM shipment_events e WHERE e.shipment_id = shipments.id) = 4",
    ]
    for index, scan in enumerate(rounds):
        with shippo_stub.lock:
            for number in numbers:
                shippo_stub.tracking.setdefault(number, []).append(scan)
        if index == 0:
            shippo_stub.fail_next(6, 500, path="/tracks")
        elif index == 1:
            shippo_stub.hang_next(2, seconds=3.0, path="/tracks")
        deliveries = [n for n in numbers for _ in range(rng.randint(2, 3))]
        rng.shuffle(deliveries)
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(webhook, deliveries)) == {200}
        wait_until(lambda check=shows[index]: each_shipment(check), 120, interval=0.5)

    statuses = chaos.settle_and_check(shoppers)
    assert statuses.get("delivered", 0) == len(orders)
    with chaos.database.unit_of_work() as session:
        histories = session.execute(
            text(
                """SELECT shipment_id, array_agg(status ORDER BY occurred_at, id),
                          array_agg(applied ORDER BY occurred_at, id)
                   FROM shipment_events GROUP BY shipment_id"""
            )
        ).all()
        session.commit()
    assert len(histories) == len(shipments)
    for shipment_id, steps, applied in histories:
        # Each scan once; the late one kept in the history but moving nothing.
        assert list(steps) == ["label_created", "in_transit", "out_for_delivery", "delivered"], (
            shipment_id
        )
        assert list(applied) == [True, True, False, True], shipment_id
    assert shippo_stub.count("GET", "/tracks", faulted=True) > 0
    assert len(shippo_stub.transactions) == len(shipments)  # tracking bought nothing
    api.close()
    hooks.close()
