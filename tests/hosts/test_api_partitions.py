"""The API host partitioned from one of the data host's servers.

* From Redis only: orders are still accepted (the outbox, in PostgreSQL, holds their next
  step) and they flow once the partition heals.
* From PostgreSQL: every request is answered 503 within seconds (no client left hanging),
  and the API serves again by itself once the partition heals, without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text

from tests.conftest import order_body
from tests.hosts.conftest import HostedSystem
from tests.hosts.data import POSTGRES_PORT, REDIS_PORT
from tests.invariants import assert_promises_kept, wait_for_rest
from tests.system import wait_until

VISA = ["pm_card_visa"]
#: Longest a client may wait for its 503 while PostgreSQL is unreachable: the connect
#: timeout (3 s) after a stale connection's network timeout (5 s), with room for a
#: loaded machine. Without the timeouts a request waits for the kernel: minutes.
PROMPT_SECONDS = 15.0


def _ready(hosted: HostedSystem, workers: int = 1, orders: int = 4) -> None:
    hosted.start_api_host()
    hosted.start_worker_hosts(workers)
    hosted.system.stock_up(products=5, stock=400)
    hosted.place(hosted.shoppers(VISA), orders)
    wait_until(lambda: hosted.count("confirmed") == orders, 120)


def test_api_host_cut_from_redis_keeps_accepting(
    hosted_factory: Callable[..., HostedSystem],
) -> None:
    hosted = hosted_factory()
    _ready(hosted, workers=2)
    healthy = hosted.shoppers(VISA)
    started = time.monotonic()
    hosted.place(healthy, 30, first=50)  # the same batch with the network whole: the baseline
    baseline = time.monotonic() - started
    wait_until(lambda: hosted.count("confirmed") == 4 + 30, 180)
    before = hosted.count("confirmed")
    hosted.lab.block("api", "data", REDIS_PORT)
    shoppers = hosted.shoppers(VISA)
    started = time.monotonic()
    hosted.place(shoppers, 30, first=100)
    accepting = time.monotonic() - started
    assert len(shoppers.accepted) == 30  # every order answered 201 while cut off
    time.sleep(3)  # nothing can flow: the relay and beat are on the API host too
    held = hosted.undispatched_outbox()
    assert held >= 30, f"only {held} outbox rows wait for the broker"
    assert hosted.count("confirmed") == before

    hosted.lab.unblock()
    healed = time.monotonic()
    wait_until(lambda: hosted.count("confirmed") == before + 30, 180)
    flowed = time.monotonic() - healed
    wait_for_rest(hosted.database, 120)
    accepted = set(shoppers.accepted.values()) | set(healthy.accepted.values())
    assert_promises_kept(hosted.database, hosted.system.initial_stock, accepted)
    print(
        f"\nAPI host cut from Redis: 30 orders accepted in {accepting:.1f} s "
        f"({30 / accepting:.1f}/s; the same batch before the partition: {baseline:.1f} s, "
        f"{30 / baseline:.1f}/s), {held} outbox rows held; all confirmed {flowed:.1f} s "
        "after the partition healed"
    )


def test_api_host_cut_from_postgres_answers_503_quickly_and_recovers(
    hosted_factory: Callable[..., HostedSystem],
) -> None:
    hosted = hosted_factory()
    _ready(hosted)
    api_process = hosted.processes.processes["api"]
    token = hosted.system.tokens[0]
    product = next(iter(hosted.system.initial_stock))
    base = f"{hosted.system.api_url}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}

    def post(key: str) -> tuple[int, float]:
        started = time.monotonic()
        with httpx.Client(headers={**headers, "Idempotency-Key": key}, timeout=120) as client:
            status = client.post(f"{base}/orders", json=order_body((product, 1))).status_code
        return status, time.monotonic() - started

    hosted.lab.block("api", "data", POSTGRES_PORT)
    cut = time.monotonic()
    with hosted.lab.inside("api"), ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, [f"cut-{n}" for n in range(16)]))
        refused = time.monotonic()
        ready = httpx.get(f"{hosted.system.api_url}/readyz", timeout=120)
    statuses = {status for status, _ in answers}
    slowest = max(seconds for _, seconds in answers)
    assert statuses == {503}, answers
    assert slowest < PROMPT_SECONDS, answers
    assert ready.status_code == 503
    assert "database" in ready.text

    hosted.lab.unblock()
    healed = time.monotonic()
    with hosted.lab.inside("api"):
        wait_until(lambda: post("after-0")[0] == 201, 60, interval=0.5)
        recovered = time.monotonic() - healed
        # The clients that were refused try again with their keys: each gets its order.
        again = [post(f"cut-{n}") for n in range(16)]
    assert {status for status, _ in again} == {201}
    assert api_process.poll() is None  # the same process: it recovered by itself
    with hosted.database.unit_of_work() as session:
        orders = session.scalar(text("SELECT count(*) FROM orders"))
        session.commit()
    assert orders == 4 + 1 + 16  # nothing half-written while refused, nothing twice
    wait_for_rest(hosted.database, 120)
    assert_promises_kept(hosted.database, hosted.system.initial_stock, set())
    times = sorted(seconds for _, seconds in answers)
    print(
        f"\nAPI host cut from PostgreSQL: 16 concurrent orders all answered 503, "
        f"median {times[len(times) // 2]:.1f} s, slowest {slowest:.1f} s, all within "
        f"{refused - cut:.1f} s; /readyz 503; serving again "
        f"{recovered:.1f} s after the partition healed"
    )
