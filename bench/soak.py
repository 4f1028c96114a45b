"""Soak: ``python -m bench.soak [--orders 10000]``.

Orders through the whole system (API, relay, beat, one worker at ``-c 2``, local providers)
in a closed loop of ``--window`` orders in flight, while the resident memory (RSS) of the
API, the worker's main and pool processes, the relay and beat is sampled. The start figure
is taken after a warm-up (imports, caches and pools filled), the end figure once the last
order is done; the growth between them is what a leak would show.

``make bench`` runs the full soak of 10,000 orders (about five minutes on two cores); the
script's own default of 2,000 is for a quick look.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import (
    Children,
    percentile,
    raw_name,
    raw_name_argument,
    rss_of_tree,
    service_arguments,
    stop_on_sigterm,
    table,
    write_raw,
)
from bench.pipeline import Loop, closed_loop, running_system, worker_args

MB = 1024 * 1024


def sample(children: Children, at: float, done: int) -> dict[str, Any]:
    """RSS in MB of each process of the system."""
    figures: dict[str, Any] = {"t": at, "done": done}
    for name in ("api", "relay", "beat"):
        own, kids = rss_of_tree(children.pid(name))
        figures[name] = (own + sum(kids)) / MB
    main, pool = rss_of_tree(children.pid("worker"))
    figures["worker main"] = main / MB
    figures["worker pool"] = [rss / MB for rss in pool]
    figures["worker pool max"] = max(pool, default=0) / MB
    return figures


COMPONENTS = ("api", "worker main", "worker pool max", "relay", "beat")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--orders", type=int, default=2000, help="orders (default %(default)s)")
    parser.add_argument("--window", type=int, default=16, help="orders kept in flight")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool size")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=1800,
        help="stop placing orders after this long, whatever --orders says",
    )
    raw_name_argument(parser, "soak")
    args = parser.parse_args(argv)
    args.name = raw_name(args, "soak")
    if not 100 <= args.orders <= 100_000 or not 1 <= args.window <= 1000:
        parser.error("--orders must be 100..100000 and --window 1..1000")
    if not 1 <= args.concurrency <= 16 or not 0.2 <= args.interval <= 60:
        parser.error("--concurrency must be 1..16 and --interval 0.2..60 s")
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    with running_system(args, "soak", users=16) as run:
        children, system = run.children, run.system
        children.start("worker", *worker_args("workers.app", args.concurrency, "soak"))
        warm = max(100, args.orders // 20)
        closed_loop(
            system.place, system.poll, window=args.window, warmup=0, duration=None,
            max_orders=warm, drain_timeout=120, check=children.check,
        )  # fmt: skip
        time.sleep(1.0)  # let the last tasks' acks and events settle
        started = time.time()
        samples.append(sample(children, started, 0))
        deadline = started + args.max_seconds
        last = [started]

        def tick(loop: Loop) -> None:
            now = time.time()
            if now - last[0] >= args.interval:
                last[0] = now
                samples.append(sample(children, now, len(loop.done)))
                if len(samples) % 15 == 0:
                    print(
                        f"  {len(loop.done):>6} orders done, RSS worker pool max "
                        f"{samples[-1]['worker pool max']:.1f} MB, api "
                        f"{samples[-1]['api']:.1f} MB",
                        flush=True,
                    )

        loop = closed_loop(
            system.place,
            system.poll,
            window=args.window,
            warmup=0,
            duration=max(1.0, deadline - time.time()),
            max_orders=args.orders,
            drain_timeout=300,
            tick=tick,
            check=children.check,
        )
        time.sleep(1.0)
        samples.append(sample(children, time.time(), len(loop.done)))
        ids = list(loop.placed)
        steps = system.steps_per_order(ids)
        failed = len(loop.failed)
    elapsed = max(loop.done.values()) - started if loop.done else float("nan")
    to_done = [loop.done[i] - loop.placed[i] for i in loop.done]
    start, end = samples[0], samples[-1]
    return {
        "orders": len(loop.placed),
        "completed": len(loop.done) - failed,
        "failed": failed,
        "warmup_orders": warm,
        "window": args.window,
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "throughput": len(loop.done) / elapsed if elapsed else float("nan"),
        "done_p50_ms": 1000 * percentile(to_done, 50),
        "done_p95_ms": 1000 * percentile(to_done, 95),
        "steps_per_order": steps,
        "rss_start_mb": {c: start[c] for c in COMPONENTS},
        "rss_end_mb": {c: end[c] for c in COMPONENTS},
        "rss_peak_mb": {c: max(s[c] for s in samples) for c in COMPONENTS},
        "samples": samples,
    }


def growth(start: float, end: float) -> float:
    return 100 * (end - start) / start if start else float("nan")


def report(figures: dict[str, Any]) -> str:
    start, end, peak = figures["rss_start_mb"], figures["rss_end_mb"], figures["rss_peak_mb"]
    rows = [
        [c, start[c], end[c], peak[c], f"{growth(start[c], end[c]):+.1f} %"] for c in COMPONENTS
    ]
    return (
        f"Soak: {figures['completed']:,} orders confirmed and e-mailed ({figures['failed']} "
        f"failed) in {figures['seconds']:.0f} s = {figures['throughput']:.1f} orders/s, "
        f"-c {figures['concurrency']}, {figures['window']} in flight, to done p50 "
        f"{figures['done_p50_ms']:.0f} ms p95 {figures['done_p95_ms']:.0f} ms, "
        f"{figures['steps_per_order']:.2f} steps an order; RSS after "
        f"{figures['warmup_orders']} warm-up orders and at the end:\n"
        + table(["process", "start MB", "end MB", "peak MB", "growth"], rows)
        + "\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    print(
        f"soak: {args.orders:,} orders, -c {args.concurrency}, {args.window} in flight",
        flush=True,
    )
    figures = measure(args)
    print()
    print(report(figures))
    print(f"raw figures: {write_raw(args.name, figures)}")
    return figures


if __name__ == "__main__":
    main()
