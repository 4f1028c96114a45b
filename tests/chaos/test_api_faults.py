"""The API killed between commit and response: the client retries with its key and gets the
order it already has, never a second one."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from orderflow.models import IdempotencyKey, Order
from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem


def test_api_killed_mid_request_and_restarted(chaos: ChaosSystem) -> None:
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers()
    stream = shoppers.start(CHAOS_ORDERS, concurrency=16)
    kills = 0
    while stream.is_alive() and kills < 6:
        time.sleep(0.7)
        chaos.processes.kill("api")  # whatever it was doing: committing, answering
        kills += 1
        chaos.processes.start_api(chaos.api_port)
    stream.join()
    chaos.settle_and_check(shoppers)
    with chaos.database.unit_of_work() as session:
        orders = session.scalar(select(func.count()).select_from(Order))
        keys = session.scalar(select(func.count()).select_from(IdempotencyKey))
        session.commit()
    assert orders == keys == len(shoppers.accepted)
    assert kills > 0
    assert shoppers.retried > 0
