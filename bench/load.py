"""Load test: ``python -m bench.load`` (``make load``).

The whole system (API, relay, beat, one worker at ``-c 2``, local providers) as subprocesses
on a database and Redis db of its own. First the intake capacity is measured on this very
system (``--probe-clients`` closed-loop clients for ``--probe`` seconds, the pipeline working
behind them as it would in production); then an open-loop stream at half of it (``--rate``
overrides) for ``--duration`` seconds: orders arrive on a fixed schedule whether or not the
API keeps up, and each one's latency runs from its scheduled arrival, so a server that falls
behind shows it instead of slowing the generator down. Fulfilment is slower than intake, so a
backlog builds; the script then waits, printing its progress, until every order has reached
rest (confirmed and e-mailed) or ``--drain-timeout`` passes.

It passes (exit 0) only with 0 errors (every request answered 201), 0 lost orders (every
201 is an order at rest in the database, and the database holds no order that was not
answered) and a clean ``orderflow audit``. Figures go to ``bench/results/raw/load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from bench.common import (
    libpq_url,
    order_body,
    percentile,
    service_arguments,
    stop_on_sigterm,
    table,
    write_raw,
)
from bench.pipeline import System, running_system, worker_args
from orderflow.audit import audit as audit_database
from orderflow.db import Database, make_engine
from orderflow.settings import Settings

#: Connections the generator keeps open; arrivals beyond them queue in the generator (and
#: their latency grows), never in an unbounded pile of sockets.
CONNECTIONS = 64


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def record(self, status: int | None, body: bytes, started: float, error: str = "") -> None:
        self.latencies_ms.append((time.monotonic() - started) * 1000)
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 201:
            self.created.append(str(json.loads(body)["id"]))
        else:
            self.errors.append(error or f"{status}: {body[:300]!r}")


class Orders:
    """What the generator posts: each request from one of the seeded customers, with a fresh
    Idempotency-Key, retried with the same key on a dropped connection (as a client should)."""

    def __init__(self, base_url: str, tokens: list[str], product_ids: list[str]) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=30,
            limits=httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS),
        )
        self.tokens, self.product_ids = tokens, product_ids
        self.rng = random.Random(7)
        self.turn = 0

    async def post(self, tally: Tally, started: float) -> None:
        self.turn += 1
        token = self.tokens[self.turn % len(self.tokens)]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        body = order_body(self.product_ids, self.rng)
        error = ""
        for _ in range(3):
            try:
                answer = await self.client.post("/orders", json=body, headers=headers)
            except httpx.TransportError as failure:
                error = f"{type(failure).__name__}: {failure}"
                continue
            tally.record(answer.status_code, answer.content, started)
            return
        tally.record(None, b"", started, error)


async def probe(orders: Orders, clients: int, seconds: float) -> tuple[float, Tally]:
    """Closed loop: ``clients`` back-to-back posters; answers the orders accepted a second."""
    tally = Tally()
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < stop_at:
            await orders.post(tally, time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(tally.created) / (time.monotonic() - started), tally


async def stream(orders: Orders, rate: float, seconds: float) -> Tally:
    """Open loop: one arrival every ``1 / rate`` seconds for ``seconds``."""
    tally = Tally()
    slots = asyncio.Semaphore(CONNECTIONS)
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    total = int(rate * seconds)

    async def arrive(at: float) -> None:
        async with slots:
            await orders.post(tally, at)

    for number in range(total):
        at = start + number / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(arrive(at))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if number and number % max(1, int(rate * 10)) == 0:
            print(f"  {number:>6} orders sent, {len(tally.errors)} errors", flush=True)
    await asyncio.gather(*pending)
    return tally


def at_rest(db: psycopg.Connection[Any]) -> tuple[int, int, int]:
    """Orders in the database, orders at rest (confirmed and e-mailed, or failed/cancelled),
    and outbox messages not yet handed to the broker."""
    row = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE o.status IN ('failed', 'cancelled') OR "
        "EXISTS (SELECT 1 FROM emails e WHERE e.order_id = o.id AND e.kind = 'confirmation' "
        "AND e.status = 'sent')), (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) "
        "FROM orders o"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def drain(db: psycopg.Connection[Any], timeout: float, check: Any) -> dict[str, Any]:
    """Wait for every order to reach rest; print the backlog every few seconds."""
    started = time.monotonic()
    backlog_max, last_print = 0, 0.0
    while True:
        total, rested, undispatched = at_rest(db)
        backlog = total - rested
        backlog_max = max(backlog_max, backlog)
        now = time.monotonic()
        if backlog == 0 or now - started > timeout:
            break
        if now - last_print >= 5:
            last_print = now
            print(
                f"  draining: {backlog:>6} orders not at rest, {undispatched} outbox messages "
                f"waiting, {now - started:.0f} s",
                flush=True,
            )
        check()
        time.sleep(0.5)
    return {
        "seconds": time.monotonic() - started,
        "backlog_max": backlog_max,
        "not_at_rest": backlog,
        "orders_in_database": total,
    }


def lost_orders(db: psycopg.Connection[Any], created: list[str]) -> dict[str, int]:
    stored = {row[0] for row in db.execute("SELECT id FROM orders").fetchall()}
    answered = set(created)
    return {
        "answered_but_missing": len(answered - stored),
        "stored_but_not_answered": len(stored - answered),
        "answered_twice": len(created) - len(answered),
    }


def audit(settings: Settings) -> list[str]:
    database = Database(make_engine(settings, pool_size=1))
    try:
        with database.unit_of_work() as session:
            result = [str(violation) for violation in audit_database(session)]
            session.commit()
            return result
    finally:
        database.dispose()


def summary(tally: Tally, seconds: float) -> dict[str, Any]:
    return {
        "requests": len(tally.latencies_ms),
        "created": len(tally.created),
        "errors": len(tally.errors),
        "error_samples": tally.errors[:5],
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "rate": len(tally.created) / seconds if seconds else float("nan"),
        "p50_ms": percentile(tally.latencies_ms, 50),
        "p95_ms": percentile(tally.latencies_ms, 95),
        "p99_ms": percentile(tally.latencies_ms, 99),
        "max_ms": max(tally.latencies_ms, default=float("nan")),
    }


async def drive(args: argparse.Namespace, system: System) -> dict[str, Any]:
    orders = Orders(
        f"http://127.0.0.1:{system.port}/api/v1", system.seeded.tokens, system.seeded.product_ids
    )
    try:
        _, warm = await probe(orders, min(8, args.probe_clients), 2.0)  # fill pools and caches
        capacity, probed = await probe(orders, args.probe_clients, args.probe)
        rate = args.rate or capacity / 2
        print(
            f"intake capacity with the pipeline running: {capacity:.0f} orders/s at "
            f"{args.probe_clients} clients; streaming {rate:.1f} orders/s for "
            f"{args.duration:.0f} s",
            flush=True,
        )
        started = time.monotonic()
        streamed = await stream(orders, rate, args.duration)
        elapsed = time.monotonic() - started
    finally:
        await orders.client.aclose()
    return {
        "capacity": capacity,
        "probe": summary(probed, args.probe),
        "target_rate": rate,
        "stream": summary(streamed, elapsed),
        "stream_seconds": elapsed,
        "created": warm.created + probed.created + streamed.created,
        "errors": len(warm.errors) + len(probed.errors) + len(streamed.errors),
    }


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the stream")
    parser.add_argument(
        "--rate", type=float, default=None, help="orders/s (default: half the probe)"
    )
    parser.add_argument("--probe", type=float, default=8.0, help="seconds of the capacity probe")
    parser.add_argument("--probe-clients", type=int, default=32, help="clients of the probe")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool size")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds to drain")
    args = parser.parse_args(argv)
    if not 5 <= args.duration <= 3600 or not 1 <= args.probe <= 120:
        parser.error("--duration must be 5..3600 s and --probe 1..120 s")
    if args.rate is not None and not 0.1 <= args.rate <= 10_000:
        parser.error("--rate must be 0.1..10000 orders/s")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with running_system(args, "load", users=32) as run:
        run.children.start("worker", *worker_args("workers.app", args.concurrency, "load"))
        figures = asyncio.run(drive(args, run.system))
        with psycopg.connect(libpq_url(run.settings.database_url), autocommit=True) as db:
            figures["drain"] = drain(db, args.drain_timeout, run.children.check)
            figures["lost"] = lost_orders(db, figures.pop("created"))
        figures["audit"] = audit(run.settings)
    return figures


def report(figures: dict[str, Any]) -> str:
    stream, drained, lost = figures["stream"], figures["drain"], figures["lost"]
    rows = [
        ["capacity probe", figures["probe"]["created"], f"{figures['capacity']:.1f}",
         figures["probe"]["p50_ms"], figures["probe"]["p99_ms"], figures["probe"]["errors"]],
        ["stream", stream["created"], f"{stream['rate']:.1f}", stream["p50_ms"],
         stream["p99_ms"], stream["errors"]],
    ]  # fmt: skip
    return (
        table(["phase", "orders", "orders/s", "p50 ms", "p99 ms", "errors"], rows)
        + f"\nstream target {figures['target_rate']:.1f} orders/s for "
        f"{figures['stream_seconds']:.0f} s; backlog at its end {drained['backlog_max']:,} "
        f"orders, drained in {drained['seconds']:.0f} s ({drained['not_at_rest']} not at rest)"
        f"\nlost: {lost['answered_but_missing']} answered but missing, "
        f"{lost['stored_but_not_answered']} stored but never answered, "
        f"{lost['answered_twice']} answered twice; audit: "
        + ("clean" if not figures["audit"] else f"{len(figures['audit'])} violations")
    )


def passed(figures: dict[str, Any]) -> bool:
    return (
        figures["errors"] == 0
        and figures["drain"]["not_at_rest"] == 0
        and not any(figures["lost"].values())
        and not figures["audit"]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    figures = measure(args)
    print()
    print(report(figures))
    for sample in figures["probe"]["error_samples"] + figures["stream"]["error_samples"]:
        print(f"  error: {sample}")
    for violation in figures["audit"][:10]:
        print(f"  audit: {violation}")
    print(f"raw figures: {write_raw('load', figures)}")
    ok = passed(figures)
    print("load test " + ("passed: 0 errors, 0 lost, audit clean" if ok else "FAILED"))
    if not ok:
        sys.exit(1)
    return figures


if __name__ == "__main__":
    main()
