"""The test's own PostgreSQL and Redis restarted while orders flow."""

from __future__ import annotations

import time

from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem, OwnServers


def test_redis_restarted_without_persistence(
    chaos_on_own_servers: ChaosSystem, own_servers: OwnServers
) -> None:
    chaos = chaos_on_own_servers
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(cancel_every=8)
    stream = shoppers.start(CHAOS_ORDERS)
    for _ in range(2):
        time.sleep(1.0)
        own_servers.redis.kill()  # every queued message is gone with it
        time.sleep(1.0)
        own_servers.redis.start()
    stream.join()
    statuses = chaos.settle_and_check(shoppers)
    assert statuses.get("confirmed", 0) > 0


def test_postgres_restarted_while_busy(
    chaos_on_own_servers: ChaosSystem, own_servers: OwnServers
) -> None:
    chaos = chaos_on_own_servers
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(cancel_every=8)
    stream = shoppers.start(CHAOS_ORDERS)
    time.sleep(1.0)
    own_servers.postgres.kill()  # a crash: recovery from the WAL on start
    time.sleep(2.0)
    own_servers.postgres.start()
    time.sleep(2.0)
    own_servers.postgres.stop()  # and a clean restart
    own_servers.postgres.start()
    stream.join()
    statuses = chaos.settle_and_check(shoppers)
    assert statuses.get("confirmed", 0) > 0
    assert shoppers.retried > 0  # the API answered 503 (or not at all) while it was down
