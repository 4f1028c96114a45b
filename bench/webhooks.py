"""Outgoing webhooks benchmark: ``python -m bench.webhooks``.

The system as ``make run`` starts it (API, relay, beat, a pipeline worker, and the webhooks
worker and its dispatcher), on a database and Redis db of its own, with a local receiver
(``bench.webhook_receiver``: uvicorn, answers 200 at once, notes when each delivery came).
Three measures:

1. **Commit → receiver on an idle system.** An endpoint subscribed to every event (``*``);
   orders placed one at a time (``--idle-orders``). For each event, the time from its row's
   ``created_at`` (``clock_timestamp()`` when the event is written, just before its
   transaction commits) to its arrival at the receiver; p50 and p99.
2. **Fulfilment with two endpoints.** The closed loop of ``bench.pipeline`` (``--window``
   orders in flight for ``--duration`` seconds): without endpoints, then with two endpoints
   subscribed to ``*``, alternated ``--rounds`` times; orders/s of each and their ratio
   (between runs the webhook backlog is drained, so a run without endpoints never pays for
   the one before). For the runs with endpoints: commit → receiver under that load, and the
   backlog at the end of the window.
3. **Deliveries per second.** A replay of ``--burst`` events to a fresh endpoint
   (``POST /webhook-endpoints/{id}/replay``, one transaction): from its commit to the last
   arrival. Once with one event per subject (every delivery may go at once), once with every
   event of those orders (each subject's events go one after the other, as promised).

Figures go to ``bench/results/raw/webhooks.json``; the targets of issue 15 are printed with
them (commit → receiver p50 < 100 ms idle; fulfilment with two endpoints >= 0.8x without).
"""

from __future__ import annotations

import argparse
import math
import os
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import psycopg

from bench.common import (
    Children,
    CpuMeter,
    free_port,
    percentile,
    raw_name,
    raw_name_argument,
    service_arguments,
    stop_on_sigterm,
    table,
    uvicorn_args,
    wait_until,
    write_raw,
)
from bench.pipeline import (
    Run,
    closed_loop,
    cpu_per_order,
    meter_for,
    one_at_a_time,
    running_system,
    warm_up,
    worker_args,
)
from orderflow.db import Database, make_engine
from orderflow.webhooks import endpoints

#: The webhooks worker's pool as ``make run`` (``workers.launcher``) starts it (the admins'
#: notices; its dispatcher's sending threads are ``ORDERFLOW_WEBHOOK_SENDING_THREADS``).
WEBHOOK_THREADS = 2


def webhook_worker_args(threads: int) -> list[str]:
    return [
        "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO",
        "-Q", "webhooks", "--pool", "threads", "-c", str(threads),
        "-n", f"webhooks-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip


def _ready(children: Children, name: str) -> Callable[[], bool]:
    return lambda: " ready." in children.log(name).read_text(errors="replace")


@dataclass
class Hooks:
    """Endpoints (made through the service, as the API does) and the receiver's arrivals."""

    database: Database
    db: psycopg.Connection[Any]
    receiver: httpx.Client

    def subscribe(self, path: str, *types: str) -> str:
        with self.database.unit_of_work() as session:
            created = endpoints.create_endpoint(
                session, str(self.receiver.base_url).rstrip("/") + path, list(types), None,
                allow_private=True,
            )  # fmt: skip
            session.commit()
            return created.endpoint.id

    def delete(self, endpoint_id: str) -> None:
        with self.database.unit_of_work() as session:
            endpoints.delete_endpoint(session, endpoint_id)
            session.commit()

    def replay(self, endpoint_id: str, since: datetime, types: list[str] | None) -> int:
        with self.database.unit_of_work() as session:
            count = endpoints.replay(session, endpoint_id, since, None, types)
            session.commit()
            return count

    def arrivals(self, path: str) -> dict[str, float]:
        """webhook-id -> first arrival (epoch seconds) at ``path``."""
        seen: dict[str, float] = {}
        for where, event_id, at in self.receiver.get("/arrivals").json():
            if where == path and event_id not in seen:
                seen[event_id] = float(at)
        return seen

    def open_deliveries(self) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'failed')"
        ).fetchone()
        return int(row[0]) if row else 0

    def written(self, event_ids: list[str]) -> dict[str, tuple[str, float]]:
        """event id -> (type, epoch its row was written)."""
        rows = self.db.execute(
            "SELECT id, type, extract(epoch FROM created_at)::float8 FROM events "
            "WHERE id = ANY(%s)",
            (event_ids,),
        ).fetchall()
        return {row[0]: (row[1], float(row[2])) for row in rows}

    def events_of(self, order_ids: list[str]) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM events WHERE subject_type = 'order' AND subject_id = ANY(%s)",
            (order_ids,),
        ).fetchall()
        return [row[0] for row in rows]

    def drain(self, timeout: float = 120.0) -> None:
        wait_until(lambda: self.open_deliveries() == 0, timeout, "the webhook backlog")


def _ms(values: list[float], q: float) -> float:
    return percentile([1000 * v for v in values], q)


def lags(hooks: Hooks, path: str, event_ids: list[str], timeout: float) -> dict[str, Any]:
    """Wait for ``event_ids`` at ``path``; commit → arrival of each, overall and by type."""
    deadline = time.monotonic() + timeout
    arrived = hooks.arrivals(path)
    while not set(event_ids) <= arrived.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
        arrived = hooks.arrivals(path)
    written = hooks.written(event_ids)
    by_type: dict[str, list[float]] = {}
    every: list[float] = []
    for event_id, (kind, at) in written.items():
        if event_id in arrived:
            lag = arrived[event_id] - at
            every.append(lag)
            by_type.setdefault(kind, []).append(lag)
    return {
        "events": len(event_ids),
        "arrived": len(every),
        "p50_ms": _ms(every, 50),
        "p90_ms": _ms(every, 90),
        "p99_ms": _ms(every, 99),
        "max_ms": _ms(every, 100),
        "by_type_p50_ms": {kind: _ms(values, 50) for kind, values in sorted(by_type.items())},
    }


def measure_idle(args: argparse.Namespace, run: Run, hooks: Hooks) -> dict[str, Any]:
    endpoint_id = hooks.subscribe("/idle", "*")
    system = run.system
    loop = one_at_a_time(system.place, system.poll, args.idle_orders, run.children.check)
    figures = lags(hooks, "/idle", hooks.events_of(list(loop.placed)), timeout=60)
    hooks.drain()
    hooks.delete(endpoint_id)
    print(
        f"  idle: {figures['arrived']}/{figures['events']} events, commit -> receiver "
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms",
        flush=True,
    )
    return figures


def measure_fulfilment(args: argparse.Namespace, run: Run, hooks: Hooks) -> dict[str, Any]:
    """``--rounds`` x (without endpoints, with two subscribed to ``*``)."""
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for _ in range(args.rounds):
        for kind in ("without", "with"):
            made = [hooks.subscribe(f"/{kind}-{n}", "*") for n in (1, 2)] if kind == "with" else []
            meter = meter_for(run.children, "worker", run.settings.database_url)
            meter.groups["webhooks"] = lambda: CpuMeter.tree(run.children.pid("webhooks"))
            meter.groups["receiver"] = lambda: CpuMeter.tree(run.children.pid("receiver"))
            meter.start()
            loop = closed_loop(
                run.system.place, run.system.poll, window=args.window, warmup=args.warmup,
                duration=args.duration, check=run.children.check,
            )  # fmt: skip
            ended = time.monotonic()
            figures: dict[str, Any] = {
                "throughput": loop.throughput,
                "orders": len(loop.finished_in_window()),
                "failed": len(loop.failed),
                "backlog_at_end": hooks.open_deliveries(),
            }
            figures["cpu_ms"] = cpu_per_order(meter.stop(), len(loop.placed))
            if made:
                events = hooks.events_of(loop.finished_in_window())
                figures["lag"] = lags(hooks, "/with-1", events, timeout=120)
            hooks.drain()
            figures["drained_after_s"] = time.monotonic() - ended
            for endpoint_id in made:
                hooks.delete(endpoint_id)
            runs[kind].append(figures)
            lag = figures.get("lag")
            print(
                f"  fulfilment {kind:>7} endpoints: {figures['throughput']:6.1f} orders/s"
                + (
                    f", backlog at the end {figures['backlog_at_end']}, commit -> receiver "
                    f"p50 {lag['p50_ms']:.0f} ms p99 {lag['p99_ms']:.0f} ms"
                    if lag
                    else ""
                ),
                flush=True,
            )
    without = sum(r["throughput"] for r in runs["without"]) / len(runs["without"])
    with_ = sum(r["throughput"] for r in runs["with"]) / len(runs["with"])
    return {
        "runs": runs,
        "without": without,
        "with": with_,
        "ratio": with_ / without if without else math.nan,
    }


def measure_burst(hooks: Hooks, count: int, per_subject: bool) -> dict[str, Any]:
    """Replay ``count`` recent events to a fresh endpoint; deliveries/s until the last."""
    path = "/burst-one" if per_subject else "/burst-all"
    types = ["order.placed"] if per_subject else None
    row = hooks.db.execute(
        "SELECT created_at FROM events WHERE (%s OR type = 'order.placed') "
        "ORDER BY created_at DESC OFFSET %s LIMIT 1",
        (not per_subject, count - 1),
    ).fetchone()
    if row is None:
        row = hooks.db.execute("SELECT min(created_at) FROM events").fetchone()
    assert row is not None
    endpoint_id = hooks.subscribe(path, "*")
    started = time.time()
    replayed = hooks.replay(endpoint_id, row[0], types)
    deadline = time.monotonic() + 300
    arrived = hooks.arrivals(path)
    while len(arrived) < replayed and time.monotonic() < deadline:
        time.sleep(0.2)
        arrived = hooks.arrivals(path)
    last = max(arrived.values(), default=started)
    hooks.drain()
    hooks.delete(endpoint_id)
    figures = {
        "deliveries": replayed,
        "arrived": len(arrived),
        "seconds": last - started,
        "per_second": len(arrived) / (last - started) if last > started else math.nan,
        "one_per_subject": per_subject,
    }
    print(
        f"  burst ({'one event per subject' if per_subject else 'every event, in order'}): "
        f"{figures['arrived']}/{replayed} in {figures['seconds']:.1f} s, "
        f"{figures['per_second']:.0f} deliveries/s",
        flush=True,
    )
    return figures


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=2, help="pipeline worker pool size")
    parser.add_argument("--window", type=int, default=16, help="orders kept in flight")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds a run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--rounds", type=int, default=2, help="without/with pairs")
    parser.add_argument("--idle-orders", type=int, default=15, help="orders placed one by one")
    parser.add_argument("--burst", type=int, default=500, help="events replayed in a burst")
    raw_name_argument(parser, "webhooks")
    args = parser.parse_args(argv)
    args.name = raw_name(args, "webhooks")
    if not 1 <= args.concurrency <= 16 or not 1 <= args.rounds <= 10:
        parser.error("concurrency must be 1..16 and rounds 1..10")
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("duration must be 1..600 s and warm-up 0..60 s")
    if not 1 <= args.idle_orders <= 1000 or not 1 <= args.burst <= 100_000:
        parser.error("--idle-orders must be 1..1000 and --burst 1..100000")
    # The receiver is on this machine: the system must be allowed to post to it.
    args.env = [*args.env, "ORDERFLOW_WEBHOOK_ALLOW_PRIVATE_URLS=true"]
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with running_system(args, "webhooks", users=8) as run:
        children = run.children
        receiver = httpx.Client(base_url=start_receiver(children), timeout=30)
        children.start("worker", *worker_args("workers.app", args.concurrency, "bench"))
        children.start("webhooks", *webhook_worker_args(WEBHOOK_THREADS))
        wait_until(_ready(children, "webhooks"), 60, "the webhooks worker", children)
        database = Database(make_engine(run.settings, pool_size=1))
        assert run.system.db is not None
        hooks = Hooks(database, run.system.db, receiver)
        try:
            # Warm every process, the webhooks worker's threads and connections too.
            warming = hooks.subscribe("/warm", "*")
            warm_up(run.system.place, run.system.poll, args.concurrency, children.check)
            hooks.drain()
            hooks.delete(warming)
            idle = measure_idle(args, run, hooks)
            fulfilment = measure_fulfilment(args, run, hooks)
            bursts = [measure_burst(hooks, args.burst, per) for per in (True, False)]
        finally:
            receiver.close()
            database.dispose()
    return {
        "concurrency": args.concurrency,
        "webhook_threads": WEBHOOK_THREADS,
        "window": args.window,
        "duration": args.duration,
        "idle": idle,
        "fulfilment": fulfilment,
        "bursts": bursts,
    }


def start_receiver(children: Children) -> str:
    """``bench.webhook_receiver`` as a child of the benchmark, answering; its base URL."""
    port = free_port()
    children.start(
        "receiver",
        *uvicorn_args("bench.webhook_receiver:create_app", port),
        "--no-access-log",
        "--log-level",
        "warning",
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), 30, "the receiver", children)
    return url


def _answers(url: str) -> bool:
    with suppress(httpx.HTTPError):
        return httpx.get(f"{url}/arrivals", timeout=1).status_code == 200
    return False


def targets(figures: dict[str, Any]) -> list[str]:
    idle, ratio = figures["idle"]["p50_ms"], figures["fulfilment"]["ratio"]
    return [
        f"commit -> receiver on an idle system: p50 {idle:.0f} ms "
        f"(target < 100 ms: {'met' if idle < 100 else 'NOT met'})",
        f"fulfilment with two endpoints on '*': {ratio:.2f}x without "
        f"(target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'})",
    ]


def report(figures: dict[str, Any]) -> str:
    idle, fulfilment = figures["idle"], figures["fulfilment"]
    lines = [
        f"Commit -> receiver, idle system ({idle['arrived']} events of orders placed one at a "
        f"time): p50 {idle['p50_ms']:.1f} ms, p90 {idle['p90_ms']:.1f} ms, "
        f"p99 {idle['p99_ms']:.1f} ms, max {idle['max_ms']:.1f} ms",
        "  p50 by type: "
        + ", ".join(f"{kind} {ms:.0f}" for kind, ms in idle["by_type_p50_ms"].items()),
        "",
        f"Fulfilment, -c {figures['concurrency']}, {figures['window']} orders in flight, "
        f"{figures['duration']:g} s a run (orders/s; the webhooks worker runs in both):",
    ]
    rows = []
    for kind in ("without", "with"):
        for number, run in enumerate(fulfilment["runs"][kind], 1):
            lag = run.get("lag", {})
            rows.append(
                [
                    f"{kind} endpoints #{number}",
                    run["throughput"],
                    run["cpu_ms"].get("total", math.nan),
                    run["cpu_ms"].get("webhooks", math.nan),
                    lag.get("p50_ms", math.nan),
                    lag.get("p99_ms", math.nan),
                    run["backlog_at_end"],
                    run.get("drained_after_s", math.nan),
                ]
            )
    columns = ["run", "orders/s", "CPU ms/order", "webhooks ms", "lag p50", "lag p99"]
    lines.append(table([*columns, "backlog", "drained s"], rows))
    lines.append(
        f"mean: {fulfilment['without']:.1f} orders/s without, {fulfilment['with']:.1f} with "
        f"two endpoints: {fulfilment['ratio']:.2f}x"
    )
    lines.append("")
    for burst in figures["bursts"]:
        what = "one event per subject" if burst["one_per_subject"] else "every event, in order"
        lines.append(
            f"Deliveries/s, a replay of {burst['deliveries']} events ({what}): "
            f"{burst['per_second']:.0f}/s ({burst['arrived']} in {burst['seconds']:.1f} s)"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    load = os.getloadavg()
    print(
        f"webhooks: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    figures = measure(args)
    print()
    print(report(figures))
    for line in targets(figures):
        print(f"  {line}")
    print(f"raw figures: {write_raw(args.name, figures)}")
    return figures


if __name__ == "__main__":
    main()
