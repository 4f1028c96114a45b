"""The intake with the pipeline behind it, as a client sees it: ``python -m bench.intake --wrk``.

Issue 20 (item 4). Three servers, each measured by ``wrk`` (a C load generator: it never
shares an interpreter with the server) with ``--connections`` keep-alive connections (32)
posting real orders (the body mode's bodies, one of the seeded customers' tokens each, a
fresh ``Idempotency-Key`` on every request, made by a Lua script):

* **system**: ``python -m workers.launcher``, the very command ``make run`` runs, on the
  run's database and Redis db: the API, the Celery workers, the relay, beat and Flower.
  The warm-up builds a backlog, so the workers are fulfilling orders throughout the window
  (the orders confirmed a second inside it are reported, and the CPU of the processes
  behind the API);
* **api alone**: the same API command (``workers.launcher.api_command``, with
  ``PROMETHEUS_MULTIPROC_DIR`` as under the launcher) with nothing behind it;
* **bare**: ``bench/baseline_app.py`` (FastAPI and the same engine inserting the order row
  and its outbox row in one transaction), alone, with as many uvicorn processes.

Rounds alternate the order of the three, so drift on a shared machine falls on all alike.
Each figure comes with the load average when it was taken. ``wrk`` comes from Debian
(``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
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
    percentile,
    process_env,
    redis_db,
    scratch_dir,
    seed,
    table,
    uvicorn_args,
    wait_until,
)
from bench.profiling import PySpy, profiling
from orderflow.settings import Settings
from workers.launcher import api_command

ORDERS_PATH = "/api/v1/orders"
BASELINE_APP = "bench.baseline_app:create_app"
TARGETS = ("system", "api", "bare")

#: The Lua side of wrk: every request a fresh Idempotency-Key (the run, the thread, a count),
#: a token and a body taken in turn; answers counted by status; the figures printed as JSON.
LUA = r"""
local tokens = %(tokens)s
local bodies = %(bodies)s
local run = "%(run)s"
local path = "%(path)s"
local threads = {}
local next_id = 0
counter = 0
statuses = {}

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[(counter + tid) %% #tokens + 1],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter,
  }
  return wrk.format("POST", path, headers, bodies[(counter * 7 + tid) %% #bodies + 1])
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for key, n in pairs(counts) do all[key] = (all[key] or 0) + n end
  end
  local parts = {}
  for key, n in pairs(all) do table.insert(parts, string.format('"%%s": %%d', key, n)) end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"duration_us": %%d, "requests": %%d, "statuses": {%%s}, '
    .. '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, '
    .. '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}\n',
    summary.duration, summary.requests, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian's package)")
    return found


def write_script(path: Path, tokens: list[str], bodies: list[str], run: str) -> Path:
    def lua_list(values: list[str]) -> str:
        return "{" + ", ".join(json.dumps(value) for value in values) + "}"

    # JSON string literals are valid Lua string literals for the ASCII the bodies hold.
    path.write_text(
        LUA % {"tokens": lua_list(tokens), "bodies": lua_list(bodies), "run": run,
               "path": ORDERS_PATH}
    )  # fmt: skip
    return path


def run_wrk(
    port: int, script: Path, connections: int, threads: int, seconds: float, log: Path
) -> dict[str, Any]:
    command = [
        wrk_binary(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
        "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    log.write_text(done.stdout + done.stderr)
    for line in done.stdout.splitlines():
        if line.startswith("WRK-JSON "):
            figures: dict[str, Any] = json.loads(line[len("WRK-JSON ") :])
            return figures
    raise RuntimeError(f"wrk gave no figures (exit {done.returncode}): {done.stderr[-500:]}")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _confirmed(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM orders WHERE status = 'confirmed'"
        ).fetchone()
    return int(row[0]) if row else 0


def _api_pid(launcher_pid: int) -> int:
    """The uvicorn process the launcher started (its children come after it)."""
    for child in psutil.Process(launcher_pid).children():
        if "uvicorn" in " ".join(child.cmdline()):
            return int(child.pid)
    raise RuntimeError("the launcher started no uvicorn process")


def measure_one(
    server: Server,
    script: Path,
    scripted: tuple[list[str], list[str]],
    args: argparse.Namespace,
    scratch: Path,
    database_url: str,
    launcher_pid: int | None,
    label: str,
) -> dict[str, Any]:
    """Warm-up, then the measured wrk run, with the CPU of the API (and of what runs behind
    it) and, for the system, the orders confirmed meanwhile."""
    # The warm-up's keys are its own: the measured run's must never replay one of them.
    warm_script = write_script(script.with_suffix(".warmup.lua"), *scripted, f"{label}w")
    run_wrk(server.port, warm_script, args.connections, args.threads, args.warmup,
            scratch / f"wrk-{label}-warmup.log")  # fmt: skip
    groups = {"api": lambda: CpuMeter.tree(server.pid)}
    if launcher_pid is not None:
        groups["behind"] = lambda: [
            p for p in CpuMeter.tree(launcher_pid) if p.pid not in {x.pid for x in
                                                                    CpuMeter.tree(server.pid)}
        ]  # fmt: skip
    meter = CpuMeter(groups)
    load_before = _load()
    confirmed = _confirmed(database_url) if launcher_pid is not None else 0
    spies = []
    if args.profile and server.name != "bare":
        out = Path(args.profile) / f"intake-wrk-{label}.folded"
        spies = [PySpy(server.pid, out, subprocesses=True)]
    meter.start()
    with profiling(spies):
        figures = run_wrk(server.port, script, args.connections, args.threads, args.duration,
                          scratch / f"wrk-{label}.log")  # fmt: skip
    used = meter.stop()
    seconds = figures["duration_us"] / 1e6
    created = int(figures["statuses"].get("201", 0))
    summary: dict[str, Any] = {
        "target": server.name,
        "rps": created / seconds,
        "p50_ms": figures["p50_us"] / 1000,
        "p90_ms": figures["p90_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "created": created,
        "not_created": figures["requests"] - created,
        "statuses": figures["statuses"],
        "errors": figures["errors"],
        "api_cpu_ms_per_order": 1000 * used["api"] / max(created, 1),
        "api_cpu_percent": 100 * used["api"] / used["wall"],
        "load_before": load_before,
        "load_after": _load(),
    }
    if launcher_pid is not None:
        summary["behind_cpu_percent"] = 100 * used["behind"] / used["wall"]
        summary["confirmed_per_s"] = (_confirmed(database_url) - confirmed) / used["wall"]
    return summary


def say(summary: dict[str, Any]) -> None:
    behind = (
        f"  behind: {summary['behind_cpu_percent']:3.0f} % CPU,"
        f" {summary['confirmed_per_s']:5.1f} confirmed/s"
        if "behind_cpu_percent" in summary
        else ""
    )
    print(
        f"  {summary['target']:>6}: {summary['rps']:6.0f} orders/s  p50 {summary['p50_ms']:6.1f}"
        f"  p99 {summary['p99_ms']:6.1f} ms  API {summary['api_cpu_ms_per_order']:.2f} ms CPU"
        f" an order ({summary['api_cpu_percent']:3.0f} %){behind}"
        f"  load {summary['load_before']:.1f}->{summary['load_after']:.1f}"
        + (f"  non-201: {summary['not_created']} {summary['errors']}"
           if summary["not_created"] or any(summary["errors"].values()) else ""),
        flush=True,
    )  # fmt: skip


def measure(args: argparse.Namespace, bodies_of: Any) -> dict[str, Any]:
    wrk_binary()
    with (
        scratch_dir("orderflow-bench-intake-wrk-") as scratch,
        bench_database(args.database_url) as database_url,
        redis_db(args.redis_url) as redis_url,
    ):
        settings = bench_settings(database_url, redis_url, scratch / "state")
        seeded = seed(settings, users=64)
        bodies = bodies_of(seeded.product_ids)
        env = process_env(settings, BENCH_CUSTOMER_ID=seeded.user_ids[0], **extra_env(args.env))
        env["ORDERFLOW_API_PROCESSES"] = str(api_processes(args))
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.targets}
        print(
            f"intake --wrk: {args.connections} connections, {args.threads} wrk threads,"
            f" {args.duration:g} s after {args.warmup:g} s warm-up, {args.rounds} round(s);"
            f" load now {_load():.2f}",
            flush=True,
        )
        for number in range(args.rounds):
            order = list(args.targets) if number % 2 == 0 else list(reversed(args.targets))
            for name in order:
                script = write_script(scratch / f"post-{name}-{number}.lua", seeded.tokens,
                                      bodies, f"{name}{number}")  # fmt: skip
                with Children(env, scratch) as children:
                    server, launcher = start(name, children, env, scratch, args, number)
                    scripted = (seeded.tokens, bodies)
                    summary = measure_one(server, script, scripted, args, scratch,
                                          database_url, launcher, f"{name}{number}")  # fmt: skip
                    children.check()
                results[name].append(summary)
                say(summary)
        stored = _stored(database_url)
    return {
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "api_processes": api_processes(args),
        "env": args.env,
        "orders_stored": stored,
        **results,
    }


def api_processes(args: argparse.Namespace) -> int:
    """The API's (and the bare endpoint's) process count: ``--api-processes``, else what
    ``make run`` starts (``ORDERFLOW_API_PROCESSES``'s default), so the three compare alike."""
    return int(args.api_processes or Settings.model_fields["api_processes"].default)


def start(
    name: str,
    children: Children,
    env: dict[str, str],
    scratch: Path,
    args: argparse.Namespace,
    number: int,
) -> tuple[Server, int | None]:
    """Start one target; answers it and, for the system, the launcher's pid."""
    port = free_port()
    processes = api_processes(args)
    if name == "bare":
        pid = children.start(f"bare{number}", *uvicorn_args(BASELINE_APP, port, processes))
        launcher = None
    elif name == "api":
        metrics = scratch / f"metrics-api-{number}"  # as under the launcher
        metrics.mkdir()
        command = api_command(Settings(api_processes=processes), "127.0.0.1", port)
        pid = children.start(f"api{number}", *command,
                             env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)})  # fmt: skip
        launcher = None
    else:
        state = scratch / f"state-{number}"
        system_env = {
            "ORDERFLOW_PORT": str(port),
            "ORDERFLOW_FLOWER_PORT": str(free_port()),
            "ORDERFLOW_STATE_DIR": str(state),
            "PROMETHEUS_MULTIPROC_DIR": str(state / "metrics"),
        }
        launcher = children.start(f"system{number}", "-m", "workers.launcher", env=system_env)
    url = f"http://127.0.0.1:{port}/healthz"
    wait_until(lambda: answers(url), 300, name, children)
    if launcher is not None:
        time.sleep(args.settle)  # the workers, beat and Flower finish starting
        pid = _api_pid(launcher)
    return Server(name, port, pid), launcher


def _stored(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute("SELECT count(*) FROM orders").fetchone()
    return int(row[0]) if row else 0


def report(figures: dict[str, Any]) -> str:
    rows = []
    for name in TARGETS:
        for number, summary in enumerate(figures.get(name, [])):
            rows.append(
                [name, number + 1, summary["rps"], summary["p50_ms"], summary["p90_ms"],
                 summary["p99_ms"], summary["api_cpu_ms_per_order"],
                 summary.get("behind_cpu_percent", float("nan")),
                 summary.get("confirmed_per_s", float("nan")), summary["not_created"],
                 f"{summary['load_before']:.1f}/{summary['load_after']:.1f}"]
            )  # fmt: skip
    headers = ["server", "round", "orders/s", "p50 ms", "p90 ms", "p99 ms", "API CPU ms",
               "behind CPU %", "confirmed/s", "non-201", "load"]  # fmt: skip
    lines = [
        f"Intake as wrk sees it ({figures['connections']} connections,"
        f" {figures['api_processes']} API process(es)): system = make run's processes"
        " (API, workers, relay, beat, Flower), api = the API alone, bare = bench.baseline_app",
        table(headers, rows),
    ]
    medians = {name: _median(figures.get(name, []), "rps") for name in TARGETS}
    p99 = {name: _median(figures.get(name, []), "p99_ms") for name in TARGETS}
    if medians["bare"] > 0:  # measured (NaN compares false)
        for name in ("system", "api"):
            if medians[name] > 0:
                lines.append(
                    f"{name} / bare: {medians[name] / medians['bare']:.2f}x (medians"
                    f" {medians[name]:.0f} / {medians['bare']:.0f} orders/s), p99 {p99[name]:.0f}"
                    f" ms against {p99['bare']:.0f} ms"
                    + ("  (targets: >= 0.7x, p99 < 100 ms)" if name == "system" else "")
                )
    lines.append(f"orders stored {figures['orders_stored']}")
    return "\n".join(lines) + "\n"


def _median(summaries: list[dict[str, Any]], key: str) -> float:
    return percentile([s[key] for s in summaries], 50) if summaries else float("nan")


def arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--wrk`` mode's own options, on ``bench.intake``'s parser."""
    group = parser.add_argument_group("--wrk mode (issue 20: the pipeline behind the intake)")
    group.add_argument("--wrk", action="store_true", help="run this mode instead of the levels")
    group.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    group.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    group.add_argument("--rounds", type=int, default=2, help="rounds of the three servers (2)")
    group.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="which of system, api, bare to measure (default %(default)s)",
    )
    group.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="uvicorn processes of the system's API, the API alone and bare"
        " (ORDERFLOW_API_PROCESSES; default: the setting's default, as make run starts it)",
    )
    group.add_argument(
        "--settle", type=float, default=3.0, help="seconds for the system to finish starting"
    )


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    args.targets = [t.strip() for t in str(args.targets).split(",") if t.strip()]
    if not args.targets or not set(args.targets) <= set(TARGETS):
        parser.error(f"--targets takes some of {', '.join(TARGETS)}")
    if not 1 <= args.connections <= 1024 or not 1 <= args.threads <= 64:
        parser.error("connections must be 1..1024 and threads 1..64")
    if not 1 <= args.rounds <= 20 or not 0 <= args.api_processes <= 64:
        parser.error("rounds must be 1..20 and --api-processes 0..64")


if __name__ == "__main__":
    sys.exit("run it as: python -m bench.intake --wrk")
