"""Measures why celeryconfig.py sets ``task_acks_late``, ``task_reject_on_worker_lost`` and
``worker_prefetch_multiplier = 1`` together: the same stream of tasks, the same SIGKILLs of
pool processes and of a whole worker, under each combination; counts tasks lost (never
finished) and repeated (finished twice).

With ``--pool threads`` (the provider-bound steps' worker, ``-c 8`` here): a thread cannot be
killed alone, so the whole worker is SIGKILLed four times mid-stream and started again each
time, with everything its threads were running and had fetched.

    .venv/bin/python -m bench.delivery_guarantees [--pool threads] [--tasks 80] [--redis-url …]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

VARIANTS = {
    "acks_late + reject_on_worker_lost + prefetch 1 (ours)": ("1", "1", "1"),
    "acks early (Celery's default)": ("0", "0", "1"),
    "acks_late without reject_on_worker_lost": ("1", "0", "1"),
    "acks_late + reject, prefetch 4": ("1", "1", "4"),
}


#: Celery's arguments for each pool measured.
POOLS = {"prefork": ["-c", "2"], "threads": ["--pool", "threads", "-c", "8"]}


def _worker(
    url: str, acks: str, reject: str, prefetch: str, pool: str = "prefork"
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DELIVERY_BROKER_URL": url,
        "DELIVERY_ACKS_LATE": acks,
        "DELIVERY_REJECT_ON_LOST": reject,
        "DELIVERY_PREFETCH": prefetch,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.delivery_app", "worker", *POOLS[pool],
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _pool(worker: subprocess.Popen[bytes]) -> list[int]:
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def _kill_group(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def run_variant(
    url: str, tasks: int, acks: str, reject: str, prefetch: str, pool: str = "prefork"
) -> tuple[int, int, int]:
    store = redis.Redis.from_url(url)
    store.flushdb()
    from bench.delivery_app import step  # the app reads its broker from the environment

    worker = _worker(url, acks, reject, prefetch, pool)
    time.sleep(3)  # started and consuming
    for number in range(tasks):
        step.delay(number)
    rng = random.Random(1)
    try:
        if pool == "threads":
            for _ in range(3):  # the whole worker dies mid-task, and is started again
                time.sleep(1.5)
                _kill_group(worker)
                worker = _worker(url, acks, reject, prefetch, pool)
        else:
            for _ in range(6):  # pool processes die mid-task
                time.sleep(0.6)
                processes = _pool(worker)
                if processes:
                    os.kill(rng.choice(processes), signal.SIGKILL)
        time.sleep(1.5 if pool == "threads" else 0)
        _kill_group(worker)  # and once the whole worker, with what it had prefetched
        worker = _worker(url, acks, reject, prefetch, pool)
        _wait_quiet(store, tasks)
    finally:
        _kill_group(worker)
    done = {int(k): int(v) for k, v in store.hgetall("delivery:done").items()}
    lost = sum(1 for n in range(tasks) if done.get(n, 0) == 0)
    repeated = sum(1 for count in done.values() if count > 1)
    # Unacknowledged messages of the killed worker: kombu's Redis transport hands them out
    # again only when a worker starts after their visibility timeout.
    stranded = int(store.hlen("unacked"))
    return lost, repeated, stranded


def _wait_quiet(store: redis.Redis, tasks: int, quiet: float = 25.0, limit: float = 120.0) -> None:
    """Until every task finished, or nothing finished for longer than the visibility
    timeout (so redelivery had its chance)."""
    start = last_change = time.monotonic()
    seen = -1
    while time.monotonic() - start < limit:
        finished = store.hlen("delivery:done")
        if finished != seen:
            seen, last_change = finished, time.monotonic()
        if finished >= tasks or time.monotonic() - last_change > quiet:
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=None, help="80 (prefork), 320 (threads)")
    parser.add_argument("--pool", choices=sorted(POOLS), default="prefork")
    parser.add_argument(
        "--redis-url", default=os.environ.get("ORDERFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    )
    parser.add_argument("--db", type=int, default=13)
    args = parser.parse_args()
    url = f"{args.redis_url.rstrip('/')}/{args.db}"
    os.environ["DELIVERY_BROKER_URL"] = url
    tasks = args.tasks or (320 if args.pool == "threads" else 80)
    if args.pool == "threads":
        print(f"{tasks} tasks of 0.25 s, 8 threads, 4 kills of the whole worker each")
    else:
        print(f"{tasks} tasks of 0.25 s, 2 pool processes, 6 pool kills + 1 worker kill each")
    print(f"{'settings':56} {'lost':>5} {'repeated':>9} {'of lost, still in unacked':>26}")
    for name, (acks, reject, prefetch) in VARIANTS.items():
        lost, repeated, stranded = run_variant(url, tasks, acks, reject, prefetch, args.pool)
        print(f"{name:56} {lost:5d} {repeated:9d} {stranded:26d}", flush=True)


if __name__ == "__main__":
    main()
