"""Workers killed mid-step: nothing accepted is lost, nothing happens twice."""

from __future__ import annotations

import os
import random
import signal
import time

from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem


def test_pool_processes_killed_repeatedly(chaos: ChaosSystem) -> None:
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(cancel_every=9)
    stream = shoppers.start(CHAOS_ORDERS)
    chaos.wait_for_first_confirmation()  # a pool process killed while starting up is fatal
    rng, kills = random.Random(3), 0
    while stream.is_alive() or kills < 5:
        pool = chaos.processes.pool_pids("worker")
        if pool:
            os.kill(rng.choice(pool), signal.SIGKILL)  # the parent forks a new one
            kills += 1
        time.sleep(0.4)
    stream.join()
    statuses = chaos.settle_and_check(shoppers)
    assert kills >= 5
    assert statuses.get("confirmed", 0) > 0


def test_whole_worker_killed_and_restarted(chaos: ChaosSystem) -> None:
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers()
    stream = shoppers.start(CHAOS_ORDERS)
    for _ in range(2):
        time.sleep(1.0)
        chaos.processes.kill("worker")  # with everything it had fetched but not finished
        time.sleep(1.0)
        chaos.processes.restart("worker")
    stream.join()
    statuses = chaos.settle_and_check(shoppers)
    assert statuses.get("confirmed", 0) > 0


def test_threads_worker_killed_mid_provider_calls(chaos: ChaosSystem) -> None:
    """The provider-bound steps' worker (threads: many charges and e-mails in flight in
    one process) SIGKILLed again and again, and started again."""
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(cancel_every=7)
    stream = shoppers.start(CHAOS_ORDERS)
    chaos.wait_for_first_confirmation()
    kills = 0
    while stream.is_alive() or kills < 3:
        time.sleep(0.8)
        chaos.processes.kill("worker-io")  # every thread's task at once, fetched ones too
        kills += 1
        chaos.processes.restart("worker-io")
    stream.join()
    statuses = chaos.settle_and_check(shoppers)
    assert statuses.get("confirmed", 0) > 0
