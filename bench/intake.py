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

**Cart mode** (on unless ``--no-cart``): at each level, right after the body mode, the same
clients check out carts on the real API (``POST /orders {cart_id}``, the same shipping
address and card). Each client first fills its carts (``POST /carts`` with three catalogue
lines each, enough for the level at the body mode's rate), untimed; the fill rate and
latency are reported beside. Checkouts a second are compared with the body mode's orders a
second of the same level (issue 17's target: at least 0.8x). A customer's whole flow, fill
and checkout, costs both; the table shows it as ``fill+checkout/s`` (one over the sum of
the two rates' reciprocals).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import intake_wrk
from bench.common import (
    Children,
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
CARTS_PATH = "/api/v1/carts"
#: Carts filled per client beyond the body mode's rate, so the window never runs out.
CART_MARGIN = 2.0
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
    parser.add_argument(
        "--duration", type=float, help="measured seconds a level (6; with --wrk 15 a server)"
    )
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (1.5; with --wrk 5)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the real API with py-spy during the highest level (folded stacks in DIR; "
        "see bench.profiling)",
    )
    parser.add_argument(
        "--no-cart",
        dest="cart",
        action="store_false",
        help="skip the cart mode (checkouts from carts filled before the window)",
    )
    raw_name_argument(parser, "intake")
    intake_wrk.arguments(parser)
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 15.0 if args.wrk else 6.0
    if args.warmup is None:
        args.warmup = 5.0 if args.wrk else 1.5
    args.name = raw_name(args, "intake-wrk" if args.wrk else "intake")
    intake_wrk.check(args, parser)
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
    carts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One level against one server; answers the load generator's figures plus the server's
    CPU use inside the measured window. ``carts``: the cart mode's ``cart_bodies`` and
    ``carts_per_client`` (``bodies`` are then checkout bodies, without items)."""
    config = scratch / f"load-{run}.json"
    output = scratch / f"load-{run}.out"
    server_pid = children.pid(target.process)
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
                "server_pids": [server_pid],
                **({"mode": "cart", "cart_path": CARTS_PATH, **carts} if carts else {}),
            }
        )
    )
    generator = spawn([sys.executable, "-m", "bench.loadgen", str(config)], output)
    try:
        generator.wait(timeout=args.warmup + args.duration + 300)
    finally:
        terminate(generator, timeout=2)
    figures: dict[str, Any] = json.loads(output.read_text())
    used = figures["server_cpu_window_seconds"]
    in_window = figures["statuses"].get("201", 0)
    figures["server_cpu_percent"] = 100 * used / figures["duration"]
    figures["server_cpu_ms_per_order"] = 1000 * used / max(in_window, 1)
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
        **_fill_summary(figures),
    }


def _fill_summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The cart mode's fill phase: carts a second and their latency, refills in the window."""
    fills = figures.get("fill_latencies_ms") or []
    if figures.get("mode") != "cart" or not fills:
        return {}
    seconds = figures.get("fill_seconds") or float("nan")
    return {
        "carts_filled": len(fills),
        "fill_per_s": len(fills) / seconds,
        "fill_p50_ms": percentile(fills, 50),
        "fill_p99_ms": percentile(fills, 99),
        "refills": figures.get("refills", 0),
    }


def carts_per_client(rate: float, concurrency: int, args: argparse.Namespace) -> int:
    """Carts each client fills first: the body mode's rate over warm-up and window, plus a
    margin (a client that runs out fills more on the spot, counted as refills)."""
    expected = max(rate, 20.0) * (args.warmup + args.duration) * CART_MARGIN
    return int(expected / concurrency) + 2


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
        checkouts = [json.dumps(_checkout_body(seeded.product_ids, rng)) for _ in range(256)]
        cart_bodies = [json.dumps(_cart_body(seeded.product_ids, rng)) for _ in range(256)]
        env = process_env(settings, BENCH_CUSTOMER_ID=seeded.user_ids[0], **extra_env(args.env))
        real = Target("real", free_port(), "api")
        baseline = Target("baseline", free_port(), "baseline")
        results: dict[str, list[dict[str, Any]]] = {"real": [], "baseline": [], "cart": []}
        with Children(env, scratch) as children:
            for target, app in ((real, "api.app:create_app"), (baseline, BASELINE_APP)):
                children.start(target.process, *uvicorn_args(app, target.port, args.processes))
            for target in (real, baseline):
                url = f"http://127.0.0.1:{target.port}/healthz"
                wait_until(lambda url=url: answers(url), 300, target.name, children)
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
                    _say(target.name, level, summary)
                    if args.cart and target is real:
                        results["cart"].append(
                            _cart_level(
                                scratch,
                                real,
                                children,
                                seeded.tokens,
                                level,
                                args,
                                (checkouts, cart_bodies),
                                summary["rps"],
                                number,
                            )
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
        "cart": results["cart"],
        "orders_stored": stored,
        "orders_answered_201": accepted,
        "real_sample_keys": sorted(sample),
    }


def _say(name: str, level: int, summary: dict[str, Any]) -> None:
    print(
        f"  {name:>8} {level:>3} clients: {summary['rps']:7.0f} orders/s"
        f"  p50 {summary['p50_ms']:6.1f}  p99 {summary['p99_ms']:6.1f} ms"
        f"  server CPU {summary['server_cpu_percent']:3.0f} %"
        f" ({summary['server_cpu_ms_per_order']:.2f} ms an order)"
        + (f"  not created: {summary['not_created']}" if summary["not_created"] else ""),
        flush=True,
    )


def _cart_level(
    scratch: Path,
    real: Target,
    children: Children,
    tokens: list[str],
    level: int,
    args: argparse.Namespace,
    bodies: tuple[list[str], list[str]],
    body_rps: float,
    number: int,
) -> dict[str, Any]:
    """The cart mode at one level, on the real API, right after its body mode; ``bodies``:
    the checkouts' and the carts'."""
    checkouts, cart_bodies = bodies
    per_client = carts_per_client(body_rps, level, args)
    carts = {"cart_bodies": cart_bodies, "carts_per_client": per_client}
    figures = load(scratch, real, children, tokens, checkouts, level, args,
                   run=f"cart{level}-{number}", carts=carts)  # fmt: skip
    summary = summarise(figures)
    summary["body_rps"] = body_rps
    _say("cart", level, summary)
    print(
        f"  {'':>8} {'':>3}          filled {summary.get('carts_filled', 0)} carts first at"
        f" {summary.get('fill_per_s', float('nan')):.0f} carts/s"
        f" (p50 {summary.get('fill_p50_ms', float('nan')):.1f} ms),"
        f" {summary.get('refills', 0)} refilled in the window;"
        f" checkout/body {summary['rps'] / body_rps if body_rps else float('nan'):.2f}x",
        flush=True,
    )
    return summary


def _cart_body(product_ids: list[str], rng: random.Random) -> dict[str, Any]:
    """``POST /carts``: three lines of the catalogue."""
    chosen = rng.sample(list(product_ids), 3)
    return {"items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in chosen]}


def _checkout_body(product_ids: list[str], rng: random.Random) -> dict[str, Any]:
    """``POST /orders`` from a cart: the body mode's address and card, no items (the load
    generator adds each request's ``cart_id``)."""
    body = order_body(product_ids, rng)
    del body["items"]
    return body


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
        " + outbox) vs baseline (order + outbox insert)\n"
        + table(headers, rows)
        + f"\n{check}\n"
        + cart_report(figures.get("cart") or [])
    )


def cart_report(carts: list[dict[str, Any]]) -> str:
    """The cart mode next to the body mode of the same level."""
    if not carts:
        return ""
    rows = []
    for cart in carts:
        body, rps, fill = cart["body_rps"], cart["rps"], cart.get("fill_per_s", float("nan"))
        flow = 1 / (1 / rps + 1 / fill) if rps and fill else float("nan")
        rows.append(
            [cart["concurrency"], body, rps, f"{rps / body:.2f}x" if body else "-",
             cart["p50_ms"], cart["p99_ms"], cart["server_cpu_ms_per_order"], fill,
             cart.get("fill_p50_ms", float("nan")), flow, cart.get("refills", 0),
             cart["not_created"]]
        )  # fmt: skip
    headers = ["clients", "body/s", "checkout/s", "ratio", "p50 ms", "p99 ms", "CPU ms",
               "fills/s", "fill p50", "fill+checkout/s", "refills", "non-201"]  # fmt: skip
    return (
        "\nCart mode: POST /orders {cart_id} from carts of 3 lines filled first, next to the"
        " body mode (target >= 0.8x)\n" + table(headers, rows) + "\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    stop_on_sigterm()
    if args.wrk:
        rng = random.Random(7)
        figures = intake_wrk.measure(
            args, lambda ids: [json.dumps(order_body(ids, rng)) for _ in range(64)]
        )
        print()
        print(intake_wrk.report(figures))
        print(f"raw figures: {write_raw(args.name, figures)}")
        return figures
    figures = measure(args)
    print()
    print(report(figures))
    path = write_raw(args.name, figures)
    print(f"raw figures: {path}")
    return figures


if __name__ == "__main__":
    main()
