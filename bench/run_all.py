"""``make bench``: ``python -m bench.run_all``.

Runs the intake benchmark, the pipeline benchmark, the outgoing webhooks benchmark and the
default soak one after the other (each on a database and Redis db of its own), then
``bench.plot``, and prints the figures against the targets of issues 7 and 15. About eleven
minutes on two cores. Benchmarks report; they
never fail the build on a figure (the exit status is non-zero only if a run broke).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from bench import intake, pipeline, plot, soak, webhooks
from bench.common import service_arguments, stop_on_sigterm


def passthrough(args: argparse.Namespace) -> list[str]:
    out = ["--database-url", args.database_url, "--redis-url", args.redis_url]
    for pair in args.env:
        out += ["--env", pair]
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(
    intake_figures: dict[str, Any], pipeline_figures: dict[str, Any], soak_figures: dict[str, Any]
) -> list[str]:
    lines = []
    at32 = next((r for r in intake_figures["real"] if r["concurrency"] == 32), None)
    base32 = next((r for r in intake_figures["baseline"] if r["concurrency"] == 32), None)
    if at32 and base32:
        ratio = at32["rps"] / base32["rps"] if base32["rps"] else math.nan
        lines.append(
            f"intake at 32 clients: {ratio:.2f}x baseline "
            f"(target >= 0.5x: {verdict(ratio >= 0.5)}), p99 {at32['p99_ms']:.0f} ms "
            f"(target < 100 ms: {verdict(at32['p99_ms'] < 100)})"
        )
    for key, real in pipeline_figures["real"].items():
        base = pipeline_figures["baseline"].get(key, {}).get("throughput", math.nan)
        ratio = real["throughput"] / base if base else math.nan
        lines.append(
            f"fulfilment -c {key}: {ratio:.2f}x baseline (target >= 0.5x: {verdict(ratio >= 0.5)})"
        )
    idle = pipeline_figures.get("idle", {}).get("real")
    if idle:
        p50 = idle["confirmed_p50_ms"]
        lines.append(
            f"201 -> confirmed on an idle system: p50 {p50:.0f} ms "
            f"(target < 300 ms: {verdict(p50 < 300)})"
        )
    start = soak_figures["rss_start_mb"]["worker pool max"]
    end = soak_figures["rss_end_mb"]["worker pool max"]
    main_start = soak_figures["rss_start_mb"]["worker main"]
    main_end = soak_figures["rss_end_mb"]["worker main"]
    growth = 100 * (end - start) / start if start else math.nan
    main_growth = 100 * (main_end - main_start) / main_start if main_start else math.nan
    lines.append(
        f"worker RSS over {soak_figures['completed']:,} orders: pool process {growth:+.1f} %, "
        f"main process {main_growth:+.1f} % "
        f"(target < 10 %: {verdict(max(growth, main_growth) < 10)})"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    service_arguments(parser)
    parser.add_argument("--soak-orders", type=int, default=10_000, help="orders in the soak")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    common = passthrough(args)
    started = time.monotonic()
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("  (the machine is busy: the figures will be lower and noisier than on a quiet one)")
    timings = {}
    mark = time.monotonic()
    intake_figures = intake.main(common)
    timings["intake"] = time.monotonic() - mark
    mark = time.monotonic()
    pipeline_figures = pipeline.main(common)
    timings["pipeline"] = time.monotonic() - mark
    mark = time.monotonic()
    webhook_figures = webhooks.main(common)
    timings["webhooks"] = time.monotonic() - mark
    mark = time.monotonic()
    soak_figures = soak.main([*common, "--orders", str(args.soak_orders)])
    timings["soak"] = time.monotonic() - mark
    plot.main([])
    print()
    print("Targets of issue 7 (measured in this run):")
    for line in targets(intake_figures, pipeline_figures, soak_figures):
        print(f"  {line}")
    print("Targets of issue 15:")
    for line in webhooks.targets(webhook_figures):
        print(f"  {line}")
    spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    print(f"\nmake bench took {time.monotonic() - started:.0f} s ({spent})")


if __name__ == "__main__":
    main()
