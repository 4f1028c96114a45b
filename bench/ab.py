"""A/B of the intake API: ``python -m bench.ab --patch NAME [--env-b NAME=VALUE] …``.

Two copies of the real API on one database, A as the project ships it and B with prototype
patches (``bench.patched``) and/or extra environment, measured in alternating rounds at one
concurrency, so that whatever else the machine does falls on both alike. Prints each round
and the medians: orders/s, p50/p99 latency and the server's CPU milliseconds an order (the
figure least disturbed by a busy machine).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from typing import Any

from bench.common import (
    Children,
    answers,
    bench_database,
    bench_settings,
    extra_env,
    free_port,
    order_body,
    process_env,
    redis_db,
    scratch_dir,
    seed,
    service_arguments,
    stop_on_sigterm,
    table,
    uvicorn_args,
    wait_until,
    write_raw,
)
from bench.intake import Target, load, summarise
from bench.patched import PATCHES_ENV


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE",
                        help="environment only for B (repeatable)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--name", default="ab", help="name of the raw figures file")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 512 or not 1 <= args.rounds <= 20:
        parser.error("--concurrency must be 1..512 and --rounds 1..20")
    if not 0.5 <= args.duration <= 60:
        parser.error("--duration must be 0.5..60 s")
    if not (args.patch or args.env_b):
        parser.error("give B something: --patch NAME or --env-b NAME=VALUE")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(5)
    rounds: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    with (
        scratch_dir("orderflow-bench-ab-") as scratch,
        bench_database(args.database_url) as database_url,
        redis_db(args.redis_url) as redis_url,
    ):
        settings = bench_settings(database_url, redis_url, scratch / "state")
        seeded = seed(settings, users=args.concurrency)
        bodies = [json.dumps(order_body(seeded.product_ids, rng)) for _ in range(256)]
        env = process_env(settings, **extra_env(args.env))
        a, b = Target("A", free_port(), "a"), Target("B", free_port(), "b")
        with Children(env, scratch) as children:
            children.start("a", *uvicorn_args("api.app:create_app", a.port))
            children.start(
                "b",
                *uvicorn_args("api.app:create_app", b.port),
                env=extra_env(args.env_b, args.patch) or {PATCHES_ENV: ""},
            )
            for target in (a, b):
                url = f"http://127.0.0.1:{target.port}/healthz"
                wait_until(lambda url=url: answers(url), 60, target.name, children)
            for number in range(args.rounds):
                for target in (a, b) if number % 2 == 0 else (b, a):
                    figures = summarise(
                        load(scratch, target, children, seeded.tokens, bodies,
                             args.concurrency, args, run=f"{target.name}{number}")
                    )  # fmt: skip
                    rounds[target.name].append(figures)
                    print(
                        f"  round {number + 1} {target.name}: {figures['rps']:6.0f} orders/s, "
                        f"p50 {figures['p50_ms']:6.1f} ms, p99 {figures['p99_ms']:6.1f} ms, "
                        f"{figures['server_cpu_ms_per_order']:.2f} CPU ms an order"
                        + (f", {figures['not_created']} not 201" if figures["not_created"] else ""),
                        flush=True,
                    )
                children.check()
    return {
        "patches": args.patch,
        "env_b": args.env_b,
        "concurrency": args.concurrency,
        "rounds": rounds,
    }


KEYS = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_order")


def report(figures: dict[str, Any]) -> str:
    medians = {
        side: {key: statistics.median(r[key] for r in runs) for key in KEYS}
        for side, runs in figures["rounds"].items()
    }
    rows = [[side, *(medians[side][key] for key in KEYS)] for side in ("A", "B")]
    rows.append(["B / A", *(f"{medians['B'][k] / medians['A'][k]:.2f}x" for k in KEYS)])
    what = ", ".join([*figures["patches"], *figures["env_b"]])
    return (
        f"A/B at {figures['concurrency']} clients, medians of {len(figures['rounds']['A'])} "
        f"rounds; B = {what}\n"
        + table(["", "orders/s", "p50 ms", "p99 ms", "CPU ms/order"], rows)
        + "\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    figures = measure(args)
    print()
    print(report(figures))
    print(f"raw figures: {write_raw(args.name, figures)}")
    return figures


if __name__ == "__main__":
    main()
