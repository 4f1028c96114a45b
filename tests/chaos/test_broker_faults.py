"""The broker loses every queued message: the database is the truth, the sweeper re-drives."""

from __future__ import annotations

import time

import redis

from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem


def test_broker_flushed_while_orders_are_in_flight(chaos: ChaosSystem) -> None:
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(cancel_every=7)
    stream = shoppers.start(CHAOS_ORDERS)
    broker = redis.Redis.from_url(chaos.settings.redis_url)
    for _ in range(3):
        time.sleep(0.8)
        broker.flushdb()  # our db only: the local Redis is shared with other runs
    stream.join()
    statuses = chaos.settle_and_check(shoppers)
    assert statuses.get("confirmed", 0) > 0
