"""The pipeline with providers that take their time: ``python -m bench.pipeline
--provider-latency realistic`` (this module does the work).

The real adapters (Stripe's, SendGrid's official SDKs) against the wire-level stand-ins of
``tests.stubs``, run in a process of their own (``tests.stubs.serve``), with the workers as
``make run`` starts them: prefork (``-c 2``) for the reservation, the invoice PDF and the
upkeep, ``threads`` (``--threads``) for the charge and the e-mail. Three runs, one after the
other on a fresh system each:

* **realistic**: the stand-ins answer in Stripe 300 ± 100 ms, SendGrid 150 ± 50 ms;
* **instant**: the same stand-ins answering at once (the ceiling our own work sets);
* **sleeping baseline**: chains of Celery tasks on the same queues and pools, the provider
  steps sleeping the same latencies and doing nothing else (``bench.noop_app``).

Each is a closed loop of ``--window`` orders in flight for ``--duration`` seconds after a
warm-up; reported: orders done a second (confirmed, invoiced and e-mailed), the time from
the 201 to ``confirmed`` (p50, p99), and the CPU an order cost in each group of processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from bench.common import (
    Children,
    CpuMeter,
    free_port,
    postgres_backends,
    redis_servers,
    table,
    wait_until,
    write_raw,
)
from bench.pipeline import (
    Chains,
    Loop,
    Run,
    _ms,
    closed_loop,
    cpu_per_order,
    running_system,
    summarise_real,
    warm_up,
)
from celeryconfig import CPU_QUEUES, PROVIDER_QUEUES
from tests.stubs import EMAIL_FROM, STRIPE_WEBHOOK_SECRET
from tests.stubs.sendgrid_server import DEFAULT_API_KEY as SENDGRID_KEY
from tests.stubs.serve import PROFILES
from tests.stubs.shippo_server import DEFAULT_API_KEY as SHIPPO_KEY
from tests.stubs.stripe_server import DEFAULT_API_KEY as STRIPE_KEY

#: The stand-in each provider-bound queue waits on, for the sleeping baseline.
QUEUE_PROVIDER = {"charge_payment": "stripe", "send_email": "sendgrid"}


def provider_env(ports: dict[str, int]) -> dict[str, str]:
    """``ORDERFLOW_*`` pointing the real adapters at the stand-ins."""
    return {
        "ORDERFLOW_PAYMENT_PROVIDER": "stripe",
        "ORDERFLOW_STRIPE_API_KEY": STRIPE_KEY,
        "ORDERFLOW_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "ORDERFLOW_STRIPE_API_BASE": f"http://127.0.0.1:{ports['stripe']}",
        "ORDERFLOW_EMAIL_PROVIDER": "sendgrid",
        "ORDERFLOW_SENDGRID_API_KEY": SENDGRID_KEY,
        "ORDERFLOW_SENDGRID_HOST": f"http://127.0.0.1:{ports['sendgrid']}",
        "ORDERFLOW_EMAIL_FROM": EMAIL_FROM,
        "ORDERFLOW_SHIPPING_PROVIDER": "shippo",
        "ORDERFLOW_SHIPPO_API_KEY": SHIPPO_KEY,
        "ORDERFLOW_SHIPPO_API_BASE": f"http://127.0.0.1:{ports['shippo']}",
    }


def worker_pair(app: str, threads: int) -> dict[str, list[str]]:
    """The two pipeline workers as ``make run`` starts them (``workers.launcher``)."""
    celery = ["-m", "celery", "-A", app, "worker", "--loglevel", "INFO", "-E"]
    tag = uuid.uuid4().hex[:6]
    return {
        "worker": [*celery, "-Q", ",".join(CPU_QUEUES), "-c", "2", "-n", f"cpu-{tag}@%h"],
        "worker-io": [
            *celery, "-Q", ",".join(PROVIDER_QUEUES), "--pool", "threads",
            "-c", str(threads), "-n", f"io-{tag}@%h",
        ],
    }  # fmt: skip


@contextmanager
def stand_ins(children: Children, profile: str, ports: dict[str, int]) -> Iterator[None]:
    """``tests.stubs.serve`` with ``profile``, in a process of its own, for the block."""
    name = f"stubs-{profile}"
    children.start(
        name, "-m", "tests.stubs.serve", "--latency", profile,
        *(arg for provider, port in ports.items() for arg in (f"--{provider}-port", str(port))),
    )  # fmt: skip
    wait_until(lambda: "url" in children.log(name).read_text(errors="replace"), 30, "stand-ins")
    try:
        yield
    finally:
        children.stop(name)


def meter(children: Children, database_url: str | None) -> CpuMeter:
    groups: dict[str, Callable[[], list[psutil.Process]]] = {}
    for name in ("worker", "worker-io", "api", "relay", "beat"):
        if name in children.processes:
            groups[name] = lambda name=name: CpuMeter.tree(children.pid(name))
    stubs = [name for name in children.processes if name.startswith("stubs-")]
    if stubs:
        groups["stand-ins"] = lambda: CpuMeter.tree(children.pid(stubs[0]))
    if database_url is not None:
        groups["postgres"] = lambda: postgres_backends(database_url)
    groups["redis"] = redis_servers
    groups["bench driver"] = lambda: [psutil.Process()]
    return CpuMeter(groups)


def _loop(args: argparse.Namespace, place: Any, poll: Any, check: Any) -> Loop:
    return closed_loop(
        place, poll, window=args.window, warmup=args.warmup, duration=args.duration, check=check
    )


def measure_system(args: argparse.Namespace, run: Run, profile: str) -> dict[str, Any]:
    children, system = run.children, run.system
    with stand_ins(children, profile, args.ports):
        for name, command in worker_pair("workers.app", args.threads).items():
            children.start(name, *command)
        warm_up(system.place, system.poll, 8, children.check)
        cpu = meter(children, run.settings.database_url)
        cpu.start()
        loop = _loop(args, system.place, system.poll, children.check)
        figures = summarise_real(loop, system)
        figures["cpu_ms"] = cpu_per_order(cpu.stop(), len(loop.placed))
        ids = loop.finished_in_window()
        stages = system.stage_times(ids)
        to_confirmed = [
            stages[i]["status_confirmed"] - loop.placed[i]
            for i in ids
            if "status_confirmed" in stages.get(i, {})
        ]
        figures["confirmed_p99_ms"] = _ms(to_confirmed, 99)
        figures["done_p99_ms"] = _ms([loop.done[i] - loop.placed[i] for i in ids], 99)
        for name in ("worker", "worker-io"):
            children.stop(name)
    _say(profile, figures)
    return figures


def measure_baseline(args: argparse.Namespace, run: Run, steps: int) -> dict[str, Any]:
    children = run.children
    latencies = {
        queue: (PROFILES["realistic"][provider].mean, PROFILES["realistic"][provider].jitter)
        for queue, provider in QUEUE_PROVIDER.items()
    }
    chains = Chains(run.settings.redis_url, steps, latencies)
    for name, command in worker_pair("bench.noop_app", args.threads).items():
        children.start(name, *command)
    warm_up(chains.place, chains.poll, 8, children.check)
    cpu = meter(children, None)
    cpu.start()
    loop = _loop(args, chains.place, chains.poll, children.check)
    ids = loop.finished_in_window()
    to_done = [loop.done[i] - loop.placed[i] for i in ids]
    figures = {
        "orders": len(ids),
        "throughput": loop.throughput,
        "done_p50_ms": _ms(to_done, 50),
        "done_p99_ms": _ms(to_done, 99),
        "placed": len(loop.placed),
        "cpu_ms": cpu_per_order(cpu.stop(), len(loop.placed)),
    }
    for name in ("worker", "worker-io"):
        children.stop(name)
    _say("sleeping baseline", figures)
    return figures


def _say(what: str, figures: dict[str, Any]) -> None:
    print(
        f"  {what:>17}: {figures['throughput']:6.1f} orders/s, done p50 "
        f"{figures['done_p50_ms']:5.0f} ms p99 {figures['done_p99_ms']:5.0f} ms",
        flush=True,
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    args.ports = {name: free_port() for name in ("stripe", "sendgrid", "shippo")}
    args.env = [*args.env, *(f"{k}={v}" for k, v in provider_env(args.ports).items())]
    runs: dict[str, dict[str, Any]] = {}
    steps = 4
    for profile in args.profiles:
        with running_system(args, f"latency-{profile}", users=16) as run:
            runs[profile] = measure_system(args, run, profile)
            steps = round(runs[profile]["steps_per_order"]) or steps
    baseline: dict[str, Any] = {}
    if not args.skip_baseline:
        with running_system(args, "latency-baseline", users=1) as run:
            run.system.close()  # the baseline runs alone
            baseline = measure_baseline(args, run, steps)
    return {
        "window": args.window,
        "duration": args.duration,
        "warmup": args.warmup,
        "threads": args.threads,
        "latency": {name: str(latency) for name, latency in PROFILES["realistic"].items()},
        "baseline_steps": steps,
        "runs": runs,
        "baseline": baseline,
        "load_average_at_start": args.load_at_start,
    }


def report(figures: dict[str, Any]) -> str:
    runs, base = figures["runs"], figures["baseline"]
    instant = runs.get("instant", {}).get("throughput", math.nan)
    sleeping = base.get("throughput", math.nan)
    rows = []
    for profile, run in runs.items():
        rows.append(
            [profile, run["throughput"], run["confirmed_p50_ms"], run["confirmed_p99_ms"],
             run["done_p50_ms"], run["done_p99_ms"], run["cpu_ms"]["total"],
             f"{run['throughput'] / instant:.2f}x", f"{run['throughput'] / sleeping:.2f}x"]
        )  # fmt: skip
    if base:
        rows.append(
            ["sleeping baseline", sleeping, math.nan, math.nan, base["done_p50_ms"],
             base["done_p99_ms"], base["cpu_ms"]["total"], "", ""]
        )  # fmt: skip
    headers = ["providers", "orders/s", "conf p50", "conf p99", "done p50", "done p99",
               "CPU ms", "/instant", "/baseline"]  # fmt: skip
    latency = ", ".join(f"{k} {v}" for k, v in figures["latency"].items())
    text = [
        f"Pipeline with provider latency ({figures['window']} orders in flight, "
        f"{figures['duration']:g} s a run; workers: prefork -c 2 on {','.join(CPU_QUEUES)}, "
        f"threads -c {figures['threads']} on {','.join(PROVIDER_QUEUES)}; realistic: {latency}; "
        "ms from the 201; done = confirmation e-mail sent)",
        table(headers, rows),
    ]
    for profile, run in [*runs.items(), ("sleeping baseline", base)]:
        cpu = run.get("cpu_ms", {}) if run else {}
        if cpu:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if k != "cpu_percent")
            text.append(
                f"CPU ms an order, {profile} ({cpu['cpu_percent']:.0f} % of a core): {parts}"
            )
    text.append(f"load average at the start: {figures['load_average_at_start']}")
    return "\n".join(text) + "\n"


def main(args: argparse.Namespace) -> dict[str, Any]:
    args.load_at_start = [round(x, 2) for x in os.getloadavg()]
    args.profiles = (
        ["realistic", "instant"] if args.provider_latency == "realistic" else ["instant"]
    )
    print(
        f"pipeline with provider latency: {', '.join(args.profiles)} and a sleeping baseline; "
        f"{args.window} in flight, {args.duration:g} s a run after {args.warmup:g} s warm-up; "
        f"load average {args.load_at_start}",
        flush=True,
    )
    started = time.monotonic()
    figures = measure(args)
    print()
    print(report(figures))
    name = args.name if args.name != "pipeline" else "pipeline-latency"
    print(f"raw figures: {write_raw(name, figures)} ({time.monotonic() - started:.0f} s)")
    print(
        json.dumps(
            {"orders_per_s": {k: round(v["throughput"], 1) for k, v in figures["runs"].items()}}
        )
    )
    return figures
