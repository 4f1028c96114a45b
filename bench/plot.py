"""Figures of the last run: ``python -m bench.plot``.

Reads ``bench/results/raw/{intake,pipeline,soak}.json`` (written by the benchmarks) and
writes ``bench/results/bench.png`` (throughput and latency against concurrency, the
pipeline against its baseline, memory over the soak) and ``bench/results/results.md`` (the
same figures as tables, with the ratios and the targets of issue 7). When
``pipeline-latency.json`` is there (``make bench-latency``), it also draws
``bench/results/latency.png``: the pipeline with slow providers, instant ones and the
sleeping baseline.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from bench.common import RAW_DIR, RESULTS_DIR

PNG = RESULTS_DIR / "bench.png"
LATENCY_PNG = RESULTS_DIR / "latency.png"
MARKDOWN = RESULTS_DIR / "results.md"


def load(name: str) -> dict[str, Any] | None:
    path = RAW_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


def _fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def plot(intake: dict[str, Any] | None, pipeline: dict[str, Any] | None,
         soak: dict[str, Any] | None, path: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 9))
    (throughput, latency), (fulfilment, memory) = axes
    if intake:
        levels = [r["concurrency"] for r in intake["real"]]
        for key, label, style in (("real", "orderflow API", "-o"), ("baseline", "baseline", "--s")):
            throughput.plot(levels, [r["rps"] for r in intake[key]], style, label=label)
        for real, base in zip(intake["real"], intake["baseline"], strict=True):
            throughput.annotate(
                f"{_ratio(real['rps'], base['rps']):.2f}x",
                (real["concurrency"], real["rps"]),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        throughput.set(
            xscale="log", xlabel="concurrent clients", ylabel="orders accepted per second",
            title="Intake throughput (ratio = API / baseline)", ylim=(0, None),
        )  # fmt: skip
        throughput.set_xticks(levels, [str(level) for level in levels])
        for key, style in (("real", "-"), ("baseline", "--")):
            for pct, marker, color in (("p50", "o", "C0"), ("p95", "^", "C1"), ("p99", "v", "C3")):
                latency.plot(
                    levels,
                    [r[f"{pct}_ms"] for r in intake[key]],
                    style,
                    marker=marker,
                    color=color,
                    label=f"{'API' if key == 'real' else 'baseline'} {pct}",
                )
        latency.axhline(100, color="grey", linewidth=0.8, linestyle=":")
        latency.set(
            xscale="log", yscale="log", xlabel="concurrent clients", ylabel="latency (ms)",
            title="Intake latency (dotted: 100 ms)",
        )  # fmt: skip
        latency.set_xticks(levels, [str(level) for level in levels])
        throughput.legend()
        latency.legend(fontsize=7, ncol=2)
    if pipeline:
        keys = list(pipeline["real"])
        xs = range(len(keys))
        real = [pipeline["real"][k]["throughput"] for k in keys]
        base = [pipeline["baseline"].get(k, {}).get("throughput", 0) for k in keys]
        fulfilment.bar([x - 0.2 for x in xs], real, 0.4, label="orderflow pipeline")
        fulfilment.bar([x + 0.2 for x in xs], base, 0.4, label="baseline (no-op chain)")
        for x, r, b in zip(xs, real, base, strict=True):
            if b:
                fulfilment.annotate(f"{r / b:.2f}x", (x - 0.2, r), textcoords="offset points",
                                    xytext=(0, 4), ha="center", fontsize=8)  # fmt: skip
        fulfilment.set_xticks(list(xs), [f"-c {k}" for k in keys])
        fulfilment.set(
            ylabel="orders done per second",
            title=f"Fulfilment, {pipeline['window']} in flight (placed → confirmed → e-mailed)",
        )  # fmt: skip
        fulfilment.legend()
    if soak:
        done = [s["done"] for s in soak["samples"]]
        for component in ("api", "worker main", "worker pool max", "relay", "beat"):
            memory.plot(done, [s[component] for s in soak["samples"]], label=component)
        memory.set(
            xlabel="orders done", ylabel="RSS (MB)", ylim=(0, None),
            title=f"Memory over the soak ({soak['orders']:,} orders)",
        )  # fmt: skip
        memory.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


#: The runs of ``bench.pipeline --provider-latency``, in the order they are drawn.
LATENCY_RUNS = (("realistic", "slow providers"), ("instant", "instant providers"))


def plot_latency(figures: dict[str, Any], path: Path) -> None:
    """Orders a second and 201 → confirmed of the pipeline with providers that take their
    time, next to instant providers and to chains that only sleep the same latencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(label, figures["runs"][key]) for key, label in LATENCY_RUNS if key in figures["runs"]]
    runs.append(("sleeping baseline", figures["baseline"]))
    labels = [label for label, _ in runs]
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    bars = rate.bar(labels, [run["throughput"] for _, run in runs], color=["C0", "C2", "C7"])
    rate.bar_label(bars, fmt="%.1f")
    rate.set(
        ylabel="orders e-mailed per second",
        title=f"Fulfilment, {figures['window']} in flight, {figures['threads']} threads "
        f"(load {figures['machine'].get('load_average_at_end', ['?'])[0]})",
    )  # fmt: skip
    xs = range(len(runs))
    for offset, pct, color in ((-0.2, "p50", "C0"), (0.2, "p99", "C3")):
        values = [run.get(f"confirmed_{pct}_ms", run[f"done_{pct}_ms"]) for _, run in runs]
        latency.bar([x + offset for x in xs], values, 0.4, label=pct, color=color)
    latency.set_xticks(list(xs), labels)
    latency.set(ylabel="ms", title="201 → confirmed (baseline: chain done)")
    latency.legend()
    stripe, sendgrid = figures["latency"]["stripe"], figures["latency"]["sendgrid"]
    figure.suptitle(f"Providers that take their time: Stripe {stripe}, SendGrid {sendgrid}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def markdown(intake: dict[str, Any] | None, pipeline: dict[str, Any] | None,
             soak: dict[str, Any] | None, soak_full: dict[str, Any] | None) -> str:  # fmt: skip
    out = ["# Benchmark results", ""]
    machine = next((f["machine"] for f in (intake, pipeline, soak) if f), None)
    if machine:
        loads = "; ".join(
            f"{name} {figures['machine'].get('load_average_at_end', '?')}"
            for name, figures in (("intake", intake), ("pipeline", pipeline), ("soak", soak))
            if figures
        )
        out += [
            f"Last run {machine['at']}, {machine['cpus']} CPUs, Python {machine['python']}. "
            f"Load average (1, 5, 15 min) at the end of each script: {loads}. "
            "Regenerate with `make bench` (or `python -m bench.plot` after the scripts).",
            "",
            "![throughput, latency, fulfilment and memory](bench.png)",
            "",
        ]
    if intake:
        out += [
            f"## Intake (`python -m bench.intake`): {intake['duration']:g} s a level, uvicorn "
            f"{intake['uvicorn_processes']} process(es) for each server",
            "",
            "| clients | API orders/s | p50 ms | p95 ms | p99 ms | baseline orders/s | p50 ms "
            "| p95 ms | p99 ms | ratio |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for real, base in zip(intake["real"], intake["baseline"], strict=True):
            out.append(
                f"| {real['concurrency']} | {_fmt(real['rps'])} | {_fmt(real['p50_ms'], 1)} | "
                f"{_fmt(real['p95_ms'], 1)} | {_fmt(real['p99_ms'], 1)} | {_fmt(base['rps'])} | "
                f"{_fmt(base['p50_ms'], 1)} | {_fmt(base['p95_ms'], 1)} | "
                f"{_fmt(base['p99_ms'], 1)} | {_ratio(real['rps'], base['rps']):.2f}x |"
            )
        out += [
            "",
            f"Every 201 is an order in the database: {intake['orders_stored']:,} stored, "
            f"{intake['orders_answered_201']:,} answered 201.",
            "",
        ]
    if pipeline:
        out += [
            f"## Fulfilment (`python -m bench.pipeline`): {pipeline['window']} orders in flight, "
            f"{pipeline['duration']:g} s a run; baseline {pipeline['baseline_steps']} chained "
            "no-op tasks an order",
            "",
            "| worker | orders/s | 201→confirmed p50 / p95 ms | 201→e-mail sent p50 / p95 ms "
            "| baseline chains/s | baseline p50 / p95 ms | ratio | CPU ms an order (all "
            "processes) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, real in pipeline["real"].items():
            base = pipeline["baseline"].get(key, {})
            ratio = real["throughput"] / base["throughput"] if base.get("throughput") else math.nan
            out.append(
                f"| -c {key} | {_fmt(real['throughput'], 1)} | {_fmt(real['confirmed_p50_ms'])} / "
                f"{_fmt(real['confirmed_p95_ms'])} | {_fmt(real['done_p50_ms'])} / "
                f"{_fmt(real['done_p95_ms'])} | {_fmt(base.get('throughput', math.nan), 1)} | "
                f"{_fmt(base.get('done_p50_ms', math.nan))} / "
                f"{_fmt(base.get('done_p95_ms', math.nan))} | {ratio:.2f}x | "
                f"{_fmt(real.get('cpu_ms', {}).get('total', math.nan), 1)} vs "
                f"{_fmt(base.get('cpu_ms', {}).get('total', math.nan), 1)} |"
            )
        idle = pipeline.get("idle", {})
        if "real" in idle:
            real, base = idle["real"], idle.get("baseline", {})
            stages = ", ".join(f"{k} {v:.0f}" for k, v in real["stages_p50_ms"].items())
            out += [
                "",
                f"Idle system, one order at a time (-c {idle['concurrency']}, "
                f"{real['placed']} orders): 201→confirmed p50 {_fmt(real['confirmed_p50_ms'])} ms,"
                f" p95 {_fmt(real['confirmed_p95_ms'])} ms; 201→e-mail sent p50 "
                f"{_fmt(real['done_p50_ms'])} ms, p95 {_fmt(real['done_p95_ms'])} ms; baseline "
                f"chain p50 {_fmt(base.get('done_p50_ms', math.nan), 1)} ms. Median ms from the "
                f"previous step: {stages}.",
            ]
        out.append("")
    for label, figures in (("default", soak), ("full size", soak_full)):
        if not figures:
            continue
        out += [
            f"## Soak, {label} (`python -m bench.soak --orders {figures['orders']}`): "
            f"{figures['completed']:,} orders in {figures['seconds']:.0f} s "
            f"({figures['throughput']:.1f}/s), {figures['failed']} failed, "
            f"{figures['steps_per_order']:.2f} steps an order",
            "",
            "| process | RSS start MB | end MB | peak MB | growth |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for component, start in figures["rss_start_mb"].items():
            end = figures["rss_end_mb"][component]
            out.append(
                f"| {component} | {start:.1f} | {end:.1f} | "
                f"{figures['rss_peak_mb'][component]:.1f} | {100 * (end - start) / start:+.1f} % |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__)
    parser.parse_args(argv)
    intake, pipeline, soak = load("intake"), load("pipeline"), load("soak")
    if not (intake or pipeline or soak):
        raise SystemExit(f"no figures in {RAW_DIR}: run the benchmarks first")
    plot(intake, pipeline, soak, PNG)
    MARKDOWN.write_text(markdown(intake, pipeline, soak, load("soak-full")))
    print(f"wrote {PNG} and {MARKDOWN}")
    latency = load("pipeline-latency")
    if latency:
        plot_latency(latency, LATENCY_PNG)
        print(f"wrote {LATENCY_PNG}")


if __name__ == "__main__":
    main()
