"""The webhook dispatcher alone: ``python -m bench.webhook_dispatcher``.

A fresh database with two endpoints on ``*`` pointing at a local receiver
(``bench.webhook_receiver``), and a ``Dispatcher`` in this process. Batches of orders' events
are written as the pipeline writes them (four events of one subject a transaction, a
delivery per endpoint each) while the dispatcher delivers them; for each batch, the CPU a
delivery of this process (the dispatcher; the writer's share measured apart and taken off)
and of PostgreSQL (every server process: backends, autovacuum, WAL writer), and the
dispatcher's rounds. The baseline, in the same run: the same batches written with no
dispatcher running. Then a ``VACUUM`` of the deliveries and one batch more: a claim steps
over the dead index entries of finished deliveries until a vacuum removes them, so the
figures of successive batches show what that costs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import psutil
import psycopg

from bench.common import (
    Children,
    bench_database,
    libpq_url,
    raw_name_argument,
    scratch_dir,
    service_arguments,
    stop_on_sigterm,
    table,
    write_raw,
)
from bench.webhooks import start_receiver
from orderflow.db import Database, make_engine
from orderflow.logging import configure_logging
from orderflow.settings import Settings
from orderflow.webhooks import endpoints
from orderflow.webhooks.dispatcher import Dispatcher

#: An order snapshot of about the size the pipeline's events carry.
DATA = json.dumps({"id": "ord_x", "lines": [{"sku": "x" * 20, "quantity": 1}] * 5, "n": "y" * 800})
_WRITE = """
    WITH ev AS (
        INSERT INTO events (id, type, subject_type, subject_id, sequence, data)
        VALUES (%s, 'order.placed', 'order', %s, %s, %s)
        RETURNING id, subject_type, subject_id, sequence)
    INSERT INTO webhook_deliveries (endpoint_id, event_id, subject_type, subject_id, sequence)
    SELECT e.id, ev.id, ev.subject_type, ev.subject_id, ev.sequence
    FROM ev, webhook_endpoints e WHERE e.status = 'enabled'
"""


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(parser)
    parser.add_argument("--orders", type=int, default=1000, help="orders (4 events) a batch")
    parser.add_argument("--batches", type=int, default=3, help="batches before the VACUUM")
    raw_name_argument(parser, "webhook-dispatcher")
    args = parser.parse_args(argv)
    if not 10 <= args.orders <= 100_000 or not 1 <= args.batches <= 20:
        parser.error("--orders must be 10..100000 and --batches 1..20")
    return args


def _postgres_cpu() -> float:
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("postgres"):
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


def _write_batch(db: psycopg.Connection[Any], batch: int, orders: int) -> float:
    """The batch's events, pacing like a busy pipeline; the CPU this process spent on it."""
    started = time.process_time()
    for order in range(orders):
        subject = f"ord_{batch}_{order}"
        with db.transaction():
            for sequence in range(1, 5):
                db.execute(_WRITE, (f"evt_{batch}_{order}_{sequence}", subject, sequence, DATA))
        time.sleep(0.001)
    return time.process_time() - started


def _open(db: psycopg.Connection[Any]) -> int:
    row = db.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'failed')"
    ).fetchone()
    return int(row[0]) if row else 0


def _batch(
    db: psycopg.Connection[Any], batch: int, orders: int, dispatcher: Dispatcher | None
) -> dict[str, float]:
    deliveries = orders * 4 * 2
    rounds_before = dispatcher.rounds if dispatcher else 0
    claims_before = dispatcher.claims if dispatcher else 0
    postgres, own, wall = _postgres_cpu(), time.process_time(), time.perf_counter()
    writer = _write_batch(db, batch, orders)
    # Waits on the dispatcher's own counters: a query for open deliveries would walk the
    # same dead index entries as the claims and be counted with them.
    while dispatcher is not None and (
        dispatcher.claims - claims_before < deliveries or dispatcher.in_flight
    ):
        time.sleep(0.01)
    own, wall = time.process_time() - own, time.perf_counter() - wall
    postgres = _postgres_cpu() - postgres
    return {
        "deliveries": deliveries,
        "seconds": wall,
        "writer_ms": 1000 * writer / deliveries,
        "dispatcher_ms": 1000 * (own - writer) / deliveries,
        "postgres_ms": 1000 * postgres / deliveries,
        "rounds": (dispatcher.rounds - rounds_before) if dispatcher else 0,
    }


def _run(
    args: argparse.Namespace, receiver_url: str, with_dispatcher: bool
) -> list[dict[str, float]]:
    with bench_database(args.database_url) as url:
        settings = Settings(database_url=url, webhook_allow_private_urls=True, log_level="WARNING")
        configure_logging(settings)
        database = Database(make_engine(settings, pool_size=1))
        with database.unit_of_work() as session:
            for path in ("/a", "/b"):
                endpoints.create_endpoint(
                    session, receiver_url + path, ["*"], None, allow_private=True
                )
            session.commit()
        database.dispose()
        dispatcher = Dispatcher(settings, settings.webhook_sending_threads)
        if with_dispatcher:
            dispatcher.start()
        running = dispatcher if with_dispatcher else None
        name = "dispatcher" if with_dispatcher else "no dispatcher"
        results = []
        with psycopg.connect(libpq_url(url), autocommit=True) as db:
            _write_batch(db, 0, 20)  # warm: connections, prepared statements
            while with_dispatcher and _open(db):
                time.sleep(0.01)
            for batch in range(1, args.batches + 1):
                results.append(_batch(db, batch, args.orders, running))
                print(f"  {name}: batch {batch} of {args.batches} done", flush=True)
            db.execute("VACUUM webhook_deliveries")
            results.append(_batch(db, args.batches + 1, args.orders, running))
            print(f"  {name}: the batch after VACUUM done", flush=True)
        if with_dispatcher:
            dispatcher.stop(wait=10)
        return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    load = os.getloadavg()
    print(f"webhook dispatcher: load average {load[0]:.2f} {load[1]:.2f} on {os.cpu_count()} cores")
    with (
        scratch_dir("orderflow-bench-dispatcher-") as logs,
        Children(dict(os.environ), logs) as children,
    ):
        receiver_url = start_receiver(children)
        baseline = _run(args, receiver_url, with_dispatcher=False)
        measured = _run(args, receiver_url, with_dispatcher=True)
    figures = {"orders_a_batch": args.orders, "baseline": baseline, "dispatcher": measured}
    print()
    print(report(figures))
    print(f"raw figures: {write_raw(args.name or 'webhook-dispatcher', figures)}")
    return figures


def report(figures: dict[str, Any]) -> str:
    rows = []
    batches = len(figures["dispatcher"])
    for number, (base, run) in enumerate(
        zip(figures["baseline"], figures["dispatcher"], strict=True), 1
    ):
        label = "after VACUUM" if number == batches else f"batch {number}"
        rows.append(
            [
                label,
                run["deliveries"],
                f"{run['deliveries'] / run['seconds']:.0f}",
                f"{run['dispatcher_ms']:.3f}",
                f"{base['postgres_ms']:.3f}",
                f"{run['postgres_ms']:.3f}",
                f"{run['postgres_ms'] / max(base['postgres_ms'], 1e-9):.1f}x",
                f"{run['deliveries'] / max(run['rounds'], 1):.1f}",
            ]
        )
    headers = [
        "",
        "deliveries",
        "delivered/s",
        "dispatcher CPU ms",
        "PG ms, writes only",
        "PG ms, with dispatcher",
        "PG vs writes only",
        "deliveries a round",
    ]
    return "CPU a delivery (two endpoints, four events an order):\n" + table(headers, rows)


if __name__ == "__main__":
    main()
