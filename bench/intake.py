"""Intake benchmark: ``python -m bench.intake``.

Orders accepted per second and latency (p50, p95, p99) at 1, 8, 32 and 64 concurrent clients
posting real orders (each client its own logged-in customer, a fresh ``Idempotency-Key`` on
every request, two catalogue lines, a card that succeeds) to the real API, next to the
baseline (``bench.baseline_app``: one order row and one outbox row in one transaction) in
the same run. Both are served the same way: uvicorn as a subprocess with one process per
core (``--workers``, as production runs the API; ``--processes 1`` serves them as ``make
run`` does); both use ``orderflow.db.make_engine`` with its default pool (10 + 10 overflow)
in each process. The load generator (``bench.loadgen``) is a
process of its own. Levels alternate which server goes first, so drift on a shared machine
falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    Children,
    CpuMeter,
    answers,
    bench_database,
    bench_settings,
    extra_env,
    free_port,
    libpq_url,
    order_body,
    percentile,
    process_env,
    raw_name,
    raw_name_argument,
    redis_db,
    scratch_dir,
    seed,
    service_arguments,
    stop_on_sigterm,
    table,
    terminate,
    uvicorn_args,
    wait_until,
    write_raw,
)
from bench.profiling import PySpy, profiling
from orderflow.embedded.child import spawn

LEVELS = (1, 8, 32, 64)
#: uvicorn processes a server, by default one per core.
PROCESSES = os.cpu_count() or 1
ORDERS_PATH = "/api/v1/orders"
BASELINE_APP = "bench.baseline_app:create_app"


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    process: str


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    service_arguments(parser)
    parser.add_argument(
        "--levels",
        default=",".join(map(str, LEVELS)),
        help="concurrent clients per level (default %(default)s)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=PROCESSES,
        help="uvicorn processes for each server (default: one per core, %(default)s)",
    )
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds a level")
    parser.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds first")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the real API with py-spy during the highest level (folded stacks in DIR; "
        "see bench.profiling)",
    )
    raw_name_argument(parser, "intake")
    args = parser.parse_args(argv)
    args.name = raw_name(args, "intake")
    args.levels = [int(level) for level in str(args.levels).split(",") if level.strip()]
    if not all(1 <= level <= 512 for level in args.levels):
        parser.error("levels must be between 1 and 512")
    if not 1 <= args.processes <= 64:
        parser.error("processes must be between 1 and 64")
    if not 0.5 <= args.duration <= 120 or not 0 <= args.warmup <= 30:
        parser.error("duration must be 0.5..120 s and warm-up 0..30 s")
    return args


def load(
    scratch: Path,
    target: Target,
    children: Children,
    tokens: list[str],
    bodies: list[str],
    concurrency: int,
    args: argparse.Namespace,
    run: str,
) -> dict[str, Any]:
    """One level against one server; answers the load generator's figures plus the server's
    CPU use over the level."""
    config = scratch / f"load-{run}.json"
    output = scratch / f"load-{run}.out"
    config.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": target.port,
                "path": ORDERS_PATH,
                "tokens": tokens,
                "bodies": bodies,
                "concurrency": concurrency,
                "warmup": args.warmup,
                "duration": args.duration,
                "run": run,
            }
        )
    )
    server = CpuMeter({"server": lambda: CpuMeter.tree(children.pid(target.process))})
    server.start()
    started = time.monotonic()
    generator = spawn([sys.executable, "-m", "bench.loadgen", str(config)], output)
    try:
        generator.wait(timeout=args.warmup + args.duration + 60)
    finally:
        terminate(generator, timeout=2)
    elapsed = time.monotonic() - started
    figures: dict[str, Any] = json.loads(output.read_text())
    used = server.stop()["server"]
    figures["server_cpu_percent"] = 100 * used / elapsed
    figures["server_cpu_ms_per_order"] = 1000 * used / max(figures["created_total"], 1)
    return figures


def summarise(figures: dict[str, Any]) -> dict[str, Any]:
    latencies = figures["latencies_ms"]
    created = figures["statuses"].get("201", 0)
    answered = sum(figures["statuses"].values())
    return {
        "concurrency": figures["concurrency"],
        "rps": created / figures["duration"],
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "created": created,
        "not_created": answered - created + figures["error_count"],
        "statuses": figures["statuses"],
        "errors": figures["errors"],
        "server_cpu_percent": figures["server_cpu_percent"],
        "server_cpu_ms_per_order": figures["server_cpu_ms_per_order"],
        "loadgen_cpu_seconds": figures["cpu_seconds"],
        "created_total": figures["created_total"],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    with (
        scratch_dir("orderflow-bench-intake-") as scratch,
        bench_database(args.database_url) as database_url,
        redis_db(args.redis_url) as redis_url,
    ):
        settings = bench_settings(database_url, redis_url, scratch / "state")
        seeded = seed(settings, users=max(args.levels))
        bodies = [json.dumps(order_body(seeded.product_ids, rng)) for _ in range(256)]
        env = process_env(settings, BENCH_CUSTOMER_ID=seeded.user_ids[0], **extra_env(args.env))
        real = Target("real", free_port(), "api")
        baseline = Target("baseline", free_port(), "baseline")
        results: dict[str, list[dict[str, Any]]] = {"real": [], "baseline": []}
        with Children(env, scratch) as children:
            for target, app in ((real, "api.app:create_app"), (baseline, BASELINE_APP)):
                children.start(target.process, *uvicorn_args(app, target.port, args.processes))
            for target in (real, baseline):
                url = f"http://127.0.0.1:{target.port}/healthz"
                wait_until(lambda url=url: answers(url), 60, target.name, children)
            print(
                f"intake: {args.duration:g} s a level after {args.warmup:g} s warm-up; "
                f"uvicorn, {args.processes} process(es) for each server",
                flush=True,
            )
            for number, level in enumerate(args.levels):
                order = (baseline, real) if number % 2 == 0 else (real, baseline)
                for target in order:
                    spies = []
                    if args.profile and target is real and level == max(args.levels):
                        out = Path(args.profile) / "intake-api.folded"
                        spies = [PySpy(children.pid("api"), out)]
                    with profiling(spies):
                        figures = load(
                            scratch,
                            target,
                            children,
                            seeded.tokens,
                            bodies,
                            level,
                            args,
                            run=f"{target.name}{level}-{number}",
                        )
                    summary = summarise(figures)
                    if summary["not_created"]:
                        print(
                            f"  !! {target.name} at {level} clients: {summary['not_created']} "
                            f"answers other than 201 in the window {summary['statuses']}, "
                            f"{figures['error_count']} failed requests "
                            f"{figures['errors'][:2]}; see the server log",
                            flush=True,
                        )
                    results[target.name].append(summary)
                    print(
                        f"  {target.name:>8} {level:>3} clients: {summary['rps']:7.0f} orders/s"
                        f"  p50 {summary['p50_ms']:6.1f}  p99 {summary['p99_ms']:6.1f} ms"
                        f"  server CPU {summary['server_cpu_percent']:3.0f} %"
                        f" ({summary['server_cpu_ms_per_order']:.2f} ms an order)"
                        + (
                            f"  not created: {summary['not_created']}"
                            if summary["not_created"]
                            else ""
                        ),
                        flush=True,
                    )
                children.check()
            sample = json.loads(_sample_of(scratch) or "{}")
        stored = _stored_orders(database_url)
    accepted = sum(r["created_total"] for rs in results.values() for r in rs)
    return {
        "levels": args.levels,
        "duration": args.duration,
        "warmup": args.warmup,
        "uvicorn_processes": args.processes,
        "real": results["real"],
        "baseline": results["baseline"],
        "orders_stored": stored,
        "orders_answered_201": accepted,
        "real_sample_keys": sorted(sample),
    }


def _sample_of(scratch: Path) -> str | None:
    for path in sorted(scratch.glob("load-real*.out")):
        sample = json.loads(path.read_text()).get("sample")
        if sample:
            return str(sample)
    return None


def _stored_orders(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute("SELECT count(*) FROM orders").fetchone()
    return int(row[0]) if row else 0


def report(figures: dict[str, Any]) -> str:
    rows = []
    for real, base in zip(figures["real"], figures["baseline"], strict=True):
        rows.append(
            [
                real["concurrency"],
                real["rps"],
                real["p50_ms"],
                real["p95_ms"],
                real["p99_ms"],
                base["rps"],
                base["p50_ms"],
                base["p95_ms"],
                base["p99_ms"],
                f"{real['rps'] / base['rps']:.2f}x" if base["rps"] else "-",
                real["server_cpu_ms_per_order"],
                base["server_cpu_ms_per_order"],
                real["not_created"],
            ]
        )
    headers = [
        "clients",
        "API/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "base/s",
        "b p50",
        "b p95",
        "b p99",
        "ratio",
        "CPU ms",
        "b CPU ms",
        "non-201",
    ]
    check = (
        f"orders stored {figures['orders_stored']}, answered 201 {figures['orders_answered_201']}"
    )
    return (
        "Intake: real API (auth, validation, catalogue, idempotency key, order + lines + event"
        " + outbox) vs baseline (order + outbox insert)\n" + table(headers, rows) + f"\n{check}\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    figures = measure(args)
    print()
    print(report(figures))
    path = write_raw(args.name, figures)
    print(f"raw figures: {path}")
    return figures


if __name__ == "__main__":
    main()
