"""Pipeline benchmark: ``python -m bench.pipeline``.

Orders taken from placed (the API's 201) to done (``confirmed``, invoice PDF issued and the
confirmation e-mail sent) per second, with the local payment and e-mail providers, with one
Celery worker at ``-c 1`` and at ``-c 2`` (prefork pool processes of one worker, the flags
``make run`` uses), next to a baseline in the same run: the same number of chained no-op
Celery tasks per order as the real pipeline runs (measured, 4: reserve, charge-and-confirm,
invoice, e-mail) on the same queues, through the same Redis, with the same Celery settings
(``bench.noop_app``).

Both are driven in a closed loop: ``--window`` orders (chains) are kept in flight, a new one
is placed whenever one finishes, for ``--duration`` seconds after a warm-up; throughput
counts what finished inside the measured window. The system runs as it does under
``make run``: the API (uvicorn), the outbox relay, beat (the sweeper) and the worker, on the
embedded defaults. Latency is measured twice: under that load, and on an idle system one
order at a time. Times of the steps are PostgreSQL's ``now()`` of the step's transaction.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import redis

from bench.common import (
    Children,
    CpuMeter,
    Seeded,
    answers,
    bench_database,
    bench_settings,
    extra_env,
    free_port,
    libpq_url,
    order_body,
    percentile,
    postgres_backends,
    process_env,
    raw_name,
    raw_name_argument,
    redis_db,
    redis_servers,
    scratch_dir,
    seed,
    service_arguments,
    stop_on_sigterm,
    table,
    uvicorn_args,
    wait_until,
    write_raw,
)
from bench.profiling import PySpy, profiling
from celeryconfig import STEP_QUEUES
from orderflow.settings import Settings, get_settings

#: ``orderflow`` steps a confirmed order goes through, by the event each one appends.
STAGES = ("stock_reserved", "payment_succeeded", "invoice_generated", "email_sent")


# --- a closed loop of orders ----------------------------------------------------------------

#: Place one order (chain); answer its id and the epoch time its 201 (submission) returned.
Place = Callable[[], tuple[str, float]]
#: Of these in-flight ids, the finished ones: id -> (epoch finished, succeeded).
Poll = Callable[[list[str]], dict[str, tuple[float, bool]]]


@dataclass
class Loop:
    placed: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    window_start: float = 0.0
    window_end: float = 0.0

    def finished_in_window(self) -> list[str]:
        return [i for i, at in self.done.items() if self.window_start <= at <= self.window_end]

    @property
    def throughput(self) -> float:
        span = self.window_end - self.window_start
        return len(self.finished_in_window()) / span if span > 0 else float("nan")


def closed_loop(
    place: Place,
    poll: Poll,
    *,
    window: int,
    warmup: float,
    duration: float | None,
    max_orders: int | None = None,
    drain_timeout: float = 120.0,
    poll_interval: float = 0.02,
    tick: Callable[[Loop], None] | None = None,
    check: Callable[[], None] | None = None,
) -> Loop:
    """Keep ``window`` orders in flight until ``duration`` seconds after the warm-up have
    passed (or ``max_orders`` were placed), then wait for the ones still in flight."""
    if duration is None and max_orders is None:
        raise ValueError("a loop needs a duration or a number of orders")
    loop = Loop()
    started = time.time()
    loop.window_start = started + warmup
    feed_until = loop.window_start + duration if duration is not None else math.inf
    in_flight: dict[str, float] = {}
    fed_last = started
    last_check = 0.0
    while True:
        now = time.time()
        feeding = now < feed_until and (max_orders is None or len(loop.placed) < max_orders)
        if feeding:
            fed_last = now
            while len(in_flight) < window and (max_orders is None or len(loop.placed) < max_orders):
                order_id, at = place()
                in_flight[order_id] = at
                loop.placed[order_id] = at
        elif not in_flight:
            break
        elif now > fed_last + drain_timeout:
            raise TimeoutError(f"{len(in_flight)} orders did not finish within {drain_timeout} s")
        if in_flight:
            for order_id, (at, ok) in poll(list(in_flight)).items():
                in_flight.pop(order_id, None)
                loop.done[order_id] = at
                if not ok:
                    loop.failed.append(order_id)
        if tick is not None:
            tick(loop)
        if check is not None and now - last_check > 1:
            check()
            last_check = now
        time.sleep(poll_interval)
    loop.window_end = feed_until if duration is not None else max(loop.done.values())
    if duration is None:
        loop.window_start = started
    return loop


# --- the real system --------------------------------------------------------------------------


def worker_args(app: str, concurrency: int, name: str) -> list[str]:
    """A Celery worker as ``make run`` starts it (``-E``, every step queue, INFO logs), with
    the pool size set and a node name of its own."""
    return [
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--loglevel",
        "INFO",
        "-E",
        "-Q",
        ",".join(STEP_QUEUES),
        "-c",
        str(concurrency),
        "-n",
        f"{name}-{uuid.uuid4().hex[:6]}@%h",
    ]


class System:
    """The API, the relay and beat as subprocesses; places orders over HTTP and reads what
    became of them from PostgreSQL."""

    def __init__(self, children: Children, settings: Settings, seeded: Seeded) -> None:
        self.children = children
        self.settings = settings
        self.seeded = seeded
        self.port = free_port()
        self.rng = random.Random(11)
        self.http: httpx.Client | None = None
        self.db: psycopg.Connection[Any] | None = None
        self.turn = 0

    def start(self, scratch: Path) -> None:
        self.children.start("api", *uvicorn_args("api.app:create_app", self.port))
        self.children.start("relay", "-m", "workers.relay")
        schedule = str(scratch / "celerybeat-schedule")
        beat = ["-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO"]
        self.children.start("beat", *beat, "--schedule", schedule)
        url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: answers(f"{url}/healthz"), 60, "the API", self.children)
        self.http = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
        self.db = psycopg.connect(libpq_url(self.settings.database_url), autocommit=True)

    def close(self) -> None:
        """Stop the API, relay and beat; safe to call again."""
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.db is not None:
            self.db.close()
            self.db = None
        for name in ("api", "relay", "beat"):
            self.children.stop(name)

    def place(self) -> tuple[str, float]:
        assert self.http is not None
        self.turn += 1
        token = self.seeded.tokens[self.turn % len(self.seeded.tokens)]
        answer = self.http.post(
            "/orders",
            json=order_body(self.seeded.product_ids, self.rng),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        )
        at = time.time()
        if answer.status_code != 201:
            raise RuntimeError(f"placing an order: {answer.status_code} {answer.text[:500]}")
        return str(answer.json()["id"]), at

    def poll(self, ids: list[str]) -> dict[str, tuple[float, bool]]:
        assert self.db is not None
        rows = self.db.execute(
            "SELECT o.id, o.status, extract(epoch FROM e.sent_at)::float8 FROM orders o "
            "LEFT JOIN emails e ON e.order_id = o.id AND e.kind = 'confirmation' "
            "AND e.status = 'sent' WHERE o.id = ANY(%s)",
            (ids,),
        ).fetchall()
        finished: dict[str, tuple[float, bool]] = {}
        for order_id, status, sent_at in rows:
            if sent_at is not None:
                finished[order_id] = (float(sent_at), True)
            elif status in ("failed", "cancelled"):
                finished[order_id] = (time.time(), False)
        return finished

    def stage_times(self, ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per order: the time of each step's event, and of the move to ``confirmed``."""
        assert self.db is not None
        rows = self.db.execute(
            "SELECT order_id, type, data->>'to', extract(epoch FROM created_at)::float8 "
            "FROM order_events WHERE order_id = ANY(%s)",
            (list(ids),),
        ).fetchall()
        times: dict[str, dict[str, float]] = {}
        for order_id, kind, target, at in rows:
            name = f"status_{target}" if kind == "status_changed" else kind
            times.setdefault(order_id, {})[name] = float(at)
        return times

    def steps_per_order(self, ids: Sequence[str]) -> float:
        """Pipeline steps run per order: the outbox messages written for it (each run by a
        worker after a broker round trip, or continued in the worker of the step before)."""
        assert self.db is not None
        row = self.db.execute(
            "SELECT count(*) FROM outbox WHERE order_id = ANY(%s)", (list(ids),)
        ).fetchone()
        return int(row[0]) / len(ids) if row and ids else float("nan")


@dataclass(frozen=True)
class Run:
    """What a benchmark of the whole system works with (see ``running_system``)."""

    scratch: Path
    settings: Settings
    children: Children
    system: System


@contextmanager
def running_system(args: argparse.Namespace, name: str, users: int) -> Iterator[Run]:
    """A scratch folder, database and Redis db of the run's own, ``users`` customers seeded,
    and the API, relay and beat started on them (each benchmark starts its own worker);
    everything stopped and dropped at the end."""
    with (
        scratch_dir(f"orderflow-bench-{name}-") as scratch,
        bench_database(args.database_url) as database_url,
        redis_db(args.redis_url) as redis_url,
    ):
        settings = bench_settings(database_url, redis_url, scratch / "state")
        seeded = seed(settings, users=users)
        with Children(process_env(settings, **extra_env(args.env)), scratch) as children:
            system = System(children, settings, seeded)
            try:
                system.start(scratch)
                yield Run(scratch, settings, children, system)
            finally:
                system.close()


class Chains:
    """The baseline's producer: chains of no-op tasks, finished ones read from Redis."""

    def __init__(
        self, redis_url: str, steps: int, latencies: dict[str, tuple[float, float]] | None = None
    ) -> None:
        os.environ["ORDERFLOW_REDIS_URL"] = redis_url  # what the worker's celeryconfig reads
        get_settings.cache_clear()
        from bench import noop_app

        # This process may have imported celeryconfig before the URL was set: say it here.
        noop_app.app.conf.broker_url = noop_app.app.conf.result_backend = redis_url
        self.noop = noop_app
        self.steps = steps
        self.latencies = latencies
        self.store = redis.Redis.from_url(redis_url, socket_timeout=5)

    def place(self) -> tuple[str, float]:
        chain_id = uuid.uuid4().hex
        self.noop.submit(chain_id, self.steps, self.latencies)
        return chain_id, time.time()

    def poll(self, ids: list[str]) -> dict[str, tuple[float, bool]]:
        values = self.store.hmget(self.noop.DONE_KEY, ids)
        return {i: (float(v), True) for i, v in zip(ids, values, strict=True) if v is not None}


# --- measuring --------------------------------------------------------------------------------


def meter_for(children: Children, worker: str, database_url: str | None) -> CpuMeter:
    """Where the CPU goes while orders flow: each of our processes, the PostgreSQL backends
    of our database, the Redis server (shared with whatever else uses it) and this process
    (placing orders, polling)."""
    pid = children.pid(worker)
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "worker main": lambda: [psutil.Process(pid)],
        "worker pool": lambda: CpuMeter.tree(pid, children_only=True),
    }
    for name in ("api", "relay", "beat"):
        if name in children.processes:
            groups[name] = lambda name=name: CpuMeter.tree(children.pid(name))
    if database_url is not None:
        groups["postgres"] = lambda: postgres_backends(database_url)
    groups["redis"] = redis_servers
    groups["bench driver"] = lambda: [psutil.Process()]
    return CpuMeter(groups)


def cpu_per_order(used: dict[str, float], orders: int) -> dict[str, float]:
    """Milliseconds of CPU an order cost in each process group, and the CPU use in %."""
    wall = used.pop("wall")
    figures = {name: 1000 * seconds / orders for name, seconds in used.items()} if orders else {}
    figures["total"] = sum(figures.values())
    figures["cpu_percent"] = 100 * sum(used.values()) / wall if wall else float("nan")
    return figures


def _ms(values: Sequence[float], q: float) -> float:
    return percentile([v * 1000 for v in values], q)


def summarise_real(loop: Loop, system: System) -> dict[str, Any]:
    ids = loop.finished_in_window()
    stages = system.stage_times(ids)
    to_confirmed = [
        stages[i]["status_confirmed"] - loop.placed[i]
        for i in ids
        if "status_confirmed" in stages.get(i, {})
    ]
    to_done = [loop.done[i] - loop.placed[i] for i in ids]
    return {
        "orders": len(ids),
        "throughput": loop.throughput,
        "confirmed_p50_ms": _ms(to_confirmed, 50),
        "confirmed_p95_ms": _ms(to_confirmed, 95),
        "done_p50_ms": _ms(to_done, 50),
        "done_p95_ms": _ms(to_done, 95),
        "failed": len(loop.failed),
        "placed": len(loop.placed),
        "steps_per_order": system.steps_per_order(list(loop.placed)),
        "stages_p50_ms": _stage_medians(ids, loop, stages),
    }


def _stage_medians(
    ids: Sequence[str], loop: Loop, stages: dict[str, dict[str, float]]
) -> dict[str, float]:
    """Median time from the previous step (from the 201 for the first) to each step."""
    medians: dict[str, float] = {}
    for number, stage in enumerate(STAGES):
        gaps = []
        for i in ids:
            times = stages.get(i, {})
            previous = loop.placed[i] if number == 0 else times.get(STAGES[number - 1])
            if stage in times and previous is not None:
                gaps.append(times[stage] - previous)
        medians[stage] = _ms(gaps, 50)
    return medians


def summarise_chains(loop: Loop) -> dict[str, Any]:
    ids = loop.finished_in_window()
    to_done = [loop.done[i] - loop.placed[i] for i in ids]
    return {
        "orders": len(ids),
        "throughput": loop.throughput,
        "done_p50_ms": _ms(to_done, 50),
        "done_p95_ms": _ms(to_done, 95),
        "placed": len(loop.placed),
    }


def _spies(args: argparse.Namespace, children: Children, concurrency: int) -> list[PySpy]:
    """With ``--profile``: the worker (pool processes too, waiting included), the relay and
    the API, during the run at the highest concurrency."""
    if not args.profile or concurrency != max(args.concurrency):
        return []
    out = Path(args.profile)
    return [
        PySpy(children.pid("worker"), out / "pipeline-worker.folded", subprocesses=True),
        PySpy(children.pid("worker"), out / "pipeline-worker-wall.folded", subprocesses=True,
              idle=True),
        PySpy(children.pid("relay"), out / "pipeline-relay.folded"),
        PySpy(children.pid("api"), out / "pipeline-api.folded"),
    ]  # fmt: skip


def warm_up(place: Place, poll: Poll, concurrency: int, check: Callable[[], None]) -> None:
    """A few orders through every pool process: imports, connections, fonts, caches."""
    closed_loop(
        place, poll, window=2 * concurrency, warmup=0, duration=None,
        max_orders=4 * concurrency, drain_timeout=90, check=check,
    )  # fmt: skip


def one_at_a_time(place: Place, poll: Poll, count: int, check: Callable[[], None]) -> Loop:
    return closed_loop(
        place, poll, window=1, warmup=0, duration=None, max_orders=count,
        drain_timeout=30, poll_interval=0.002, check=check,
    )  # fmt: skip


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--concurrency", default="1,2", help="worker pool sizes (default 1,2)")
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="orders kept in flight (default 16; 128 with --provider-latency)",
    )
    parser.add_argument(
        "--provider-latency",
        choices=("local", "instant", "realistic"),
        default="local",
        help="local: the local providers, one worker at each --concurrency (the default); "
        "realistic: the real adapters against the stand-ins at realistic latency, next to the "
        "same at none and to a baseline of chains sleeping the latencies (bench.provider_latency); "
        "instant: the stand-ins at none and the baseline only",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=64,
        help="with --provider-latency: threads of the provider-bound steps' worker (default 64)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds a run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--idle-orders", type=int, default=20, help="orders placed one by one")
    parser.add_argument(
        "--skip-baseline", action="store_true", help="measure the system only (for A/B runs)"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the worker, relay and API with py-spy during the highest-concurrency run "
        "(folded stacks in DIR; see bench.profiling)",
    )
    raw_name_argument(parser, "pipeline")
    args = parser.parse_args(argv)
    args.name = raw_name(args, "pipeline")
    if args.window is None:
        args.window = 16 if args.provider_latency == "local" else 128
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if not all(1 <= c <= 16 for c in args.concurrency) or not 1 <= args.window <= 1000:
        parser.error("concurrency must be 1..16 and the window 1..1000")
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("duration must be 1..600 s and warm-up 0..60 s")
    if not 1 <= args.idle_orders <= 1000:
        parser.error("--idle-orders must be 1..1000")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    idle: dict[str, Any] = {}
    with running_system(args, "pipeline", users=8) as run:
        real = {c: _measure_system(args, run, c, idle) for c in args.concurrency}
        run.system.close()  # the baseline runs alone
        measured = [r["steps_per_order"] for r in real.values()]
        steps = round(min(measured)) if measured else 4
        chains = Chains(run.settings.redis_url, steps)
        concurrencies = [] if args.skip_baseline else args.concurrency
        baseline = {c: _measure_baseline(args, run, chains, c, idle) for c in concurrencies}
    return {
        "window": args.window,
        "duration": args.duration,
        "warmup": args.warmup,
        "baseline_steps": steps,
        "real": {str(c): r for c, r in real.items()},
        "baseline": {str(c): b for c, b in baseline.items()},
        "idle": idle,
    }


def _measure_system(
    args: argparse.Namespace, run: Run, concurrency: int, idle: dict[str, Any]
) -> dict[str, Any]:
    """One worker at ``concurrency`` under load; after the last one, orders one at a time."""
    children, system = run.children, run.system
    children.start("worker", *worker_args("workers.app", concurrency, "bench"))
    warm_up(system.place, system.poll, concurrency, children.check)
    meter = meter_for(children, "worker", run.settings.database_url)
    meter.start()
    with profiling(_spies(args, children, concurrency)):
        loop = _under_load(args, system.place, system.poll, children.check)
    figures = summarise_real(loop, system)
    figures["cpu_ms"] = cpu_per_order(meter.stop(), len(loop.placed))
    _say("orderflow", concurrency, figures)
    if concurrency == args.concurrency[-1]:
        quiet = one_at_a_time(system.place, system.poll, args.idle_orders, children.check)
        idle["real"] = summarise_real(quiet, system)
        idle["concurrency"] = concurrency
    children.stop("worker")
    return figures


def _under_load(
    args: argparse.Namespace, place: Place, poll: Poll, check: Callable[[], None]
) -> Loop:
    """``--window`` orders in flight for ``--duration`` seconds after ``--warmup``."""
    return closed_loop(
        place, poll, window=args.window, warmup=args.warmup, duration=args.duration, check=check
    )


def _measure_baseline(
    args: argparse.Namespace, run: Run, chains: Chains, concurrency: int, idle: dict[str, Any]
) -> dict[str, Any]:
    """The no-op chains, measured the same way."""
    children = run.children
    children.start("noop", *worker_args("bench.noop_app", concurrency, "noop"))
    warm_up(chains.place, chains.poll, concurrency, children.check)
    meter = meter_for(children, "noop", None)
    meter.start()
    loop = _under_load(args, chains.place, chains.poll, children.check)
    figures = summarise_chains(loop)
    figures["cpu_ms"] = cpu_per_order(meter.stop(), len(loop.placed))
    _say("baseline", concurrency, figures)
    if concurrency == args.concurrency[-1]:
        idle["baseline"] = summarise_chains(
            one_at_a_time(chains.place, chains.poll, args.idle_orders, children.check)
        )
    children.stop("noop")
    return figures


def _say(what: str, concurrency: int, figures: dict[str, Any]) -> None:
    print(
        f"  {what:>9} -c {concurrency}: {figures['throughput']:6.1f} orders/s, "
        f"to done p50 {figures['done_p50_ms']:6.0f} ms p95 {figures['done_p95_ms']:6.0f} ms",
        flush=True,
    )


def report(figures: dict[str, Any]) -> str:
    rows = []
    for key, real in figures["real"].items():
        base = figures["baseline"].get(key, {})
        ratio = real["throughput"] / base["throughput"] if base.get("throughput") else math.nan
        rows.append(
            [
                f"-c {key}",
                real["throughput"],
                real["confirmed_p50_ms"],
                real["confirmed_p95_ms"],
                real["done_p50_ms"],
                real["done_p95_ms"],
                base.get("throughput", math.nan),
                base.get("done_p50_ms", math.nan),
                base.get("done_p95_ms", math.nan),
                f"{ratio:.2f}x",
            ]
        )
    headers = [
        "worker", "orders/s", "conf p50", "conf p95", "done p50", "done p95",
        "base/s", "b p50", "b p95", "ratio",
    ]  # fmt: skip
    text = [
        f"Pipeline under load ({figures['window']} orders in flight, {figures['duration']:g} s; "
        f"baseline: {figures['baseline_steps']} chained no-op tasks an order, one per step; "
        "times in ms from the 201; done = confirmation e-mail sent)",
        table(headers, rows),
    ]
    for what, runs in (("orderflow", figures["real"]), ("baseline", figures["baseline"])):
        for key, run in runs.items():
            cpu = run.get("cpu_ms", {})
            if cpu:
                parts = ", ".join(
                    f"{name} {ms:.1f}" for name, ms in cpu.items() if name not in ("cpu_percent",)
                )
                text.append(
                    f"CPU ms an order, {what} -c {key} ({cpu['cpu_percent']:.0f} % of a core "
                    f"in all): {parts}"
                )
    idle = figures.get("idle", {})
    if "real" in idle:
        real, base = idle["real"], idle.get("baseline", {})
        text += [  # (the baseline columns stay empty with --skip-baseline)
            "",
            f"Idle system, one order at a time (-c {idle['concurrency']}, "
            f"{real['placed']} orders):",
            table(
                ["", "conf p50", "conf p95", "done p50", "done p95"],
                [
                    [
                        "orderflow",
                        real["confirmed_p50_ms"],
                        real["confirmed_p95_ms"],
                        real["done_p50_ms"],
                        real["done_p95_ms"],
                    ],
                    [
                        "baseline",
                        math.nan,
                        math.nan,
                        base.get("done_p50_ms", math.nan),
                        base.get("done_p95_ms", math.nan),
                    ],
                ],
            ),
            "median ms from the previous step: "
            + ", ".join(f"{k} {v:.0f}" for k, v in real["stages_p50_ms"].items()),
        ]
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    if args.provider_latency != "local":
        from bench import provider_latency

        return provider_latency.main(args)
    print(
        f"pipeline: -c {','.join(map(str, args.concurrency))}, {args.window} in flight, "
        f"{args.duration:g} s a run after {args.warmup:g} s warm-up",
        flush=True,
    )
    figures = measure(args)
    print()
    print(report(figures))
    print(f"raw figures: {write_raw(args.name, figures)}")
    return figures


if __name__ == "__main__":
    main()
