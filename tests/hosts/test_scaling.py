"""Throughput grows with worker hosts: the same batch of orders with 1, 2 and 3 worker hosts,
the providers as slow as the real ones. The figures are printed (speed is measured, never
asserted); what is asserted is that every run keeps every promise."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tests.hosts.conftest import WORKER_CONCURRENCY, HostedSystem
from tests.hosts.stand_ins import SENDGRID_LATENCY, STRIPE_LATENCY
from tests.invariants import (
    assert_no_double_effects_at_providers,
    assert_promises_kept,
    wait_for_rest,
)
from tests.system import wait_until

ORDERS = int(os.environ.get("ORDERFLOW_HOSTS_ORDERS", "60"))
WARM_UP = 6


def _run(make: Callable[..., HostedSystem], worker_hosts: int) -> tuple[float, float, float]:
    """Orders confirmed per second, seconds for the batch and the machine's load average
    (1 min) at its end, with ``worker_hosts``."""
    # A stall period longer than the run: the sweeper must not re-drive the queue's backlog.
    hosted = make(ORDERFLOW_SWEEP_STALL_SECONDS="120")
    hosted.start_api_host()
    hosted.start_worker_hosts(worker_hosts)
    hosted.system.stock_up(products=5, stock=10 * (ORDERS + WARM_UP))
    shoppers = hosted.shoppers(methods=["pm_card_visa"])
    hosted.place(shoppers, WARM_UP)
    wait_until(lambda: hosted.count("confirmed") == WARM_UP, 60)
    timed = hosted.shoppers(methods=["pm_card_visa"])
    started = time.monotonic()
    hosted.place(timed, ORDERS, concurrency=16, first=WARM_UP)
    wait_until(lambda: hosted.count("confirmed") == WARM_UP + ORDERS, 300, interval=0.1)
    seconds = time.monotonic() - started
    load = os.getloadavg()[0]
    wait_for_rest(hosted.database, 60)
    accepted = set(timed.accepted.values())
    assert len(accepted) == ORDERS
    statuses = assert_promises_kept(hosted.database, hosted.system.initial_stock, accepted)
    assert statuses == {"confirmed": WARM_UP + ORDERS}
    stand_ins = hosted.stand_ins
    assert_no_double_effects_at_providers(hosted.database, stand_ins.stripe, stand_ins.sendgrid)
    hosted.processes.stop()
    print(f"\n{worker_hosts} worker host(s): {ORDERS} orders in {seconds:.1f} s")
    return ORDERS / seconds, seconds, load


def test_throughput_grows_with_worker_hosts(hosted_factory: Callable[..., HostedSystem]) -> None:
    rows = [(hosts, *_run(hosted_factory, hosts)) for hosts in (1, 2, 3)]
    base = rows[0][1]
    print(
        f"\nAcross hosts: {ORDERS} orders, Stripe {_ms(STRIPE_LATENCY)}, "
        f"SendGrid {_ms(SENDGRID_LATENCY)}, {WORKER_CONCURRENCY} prefork processes per host"
    )
    print("| worker hosts | seconds | orders confirmed/s | vs 1 host | load average |")
    print("|---:|---:|---:|---:|---:|")
    for hosts, rate, seconds, load in rows:
        print(f"| {hosts} | {seconds:.1f} | {rate:.1f} | {rate / base:.2f}x | {load:.1f} |")


def _ms(latency: tuple[float, float]) -> str:
    mean, jitter = latency
    return f"{mean * 1000:.0f} ± {jitter * 1000:.0f} ms"
