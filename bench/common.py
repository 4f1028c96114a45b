"""What the benchmarks share: the services (PostgreSQL and Redis), a database and a Redis db
number of their own, subprocesses that never outlive the run, seeding, statistics, tables."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
import psycopg
import redis
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from orderflow.auth import passwords, tokens
from orderflow.db import Database, make_engine
from orderflow.embedded.child import free_port, spawn
from orderflow.ids import new_id
from orderflow.migrate import upgrade_to_head
from orderflow.models import AuthSession, Product, User
from orderflow.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
RAW_DIR = RESULTS_DIR / "raw"

LOCAL_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
#: The same claim keys as ``tests/services.py``: a benchmark and a test run never share a db.
CLAIM_PREFIX = "orderflow-test-claim:"

#: Every benchmark's processes get this JWT secret; it exists only for the run.
JWT_SECRET = secrets.token_urlsafe(48)
BENCH_PASSWORD = "bench-password-42"

__all__ = ["free_port"]


# --- command line and services ------------------------------------------------------------


def service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ORDERFLOW_TEST_DATABASE_URL", LOCAL_DATABASE_URL),
        help="a PostgreSQL server where the benchmark may CREATE DATABASE "
        "(default: $ORDERFLOW_TEST_DATABASE_URL, else %(default)s)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the system's processes (repeatable), e.g. "
        "ORDERFLOW_LOG_LEVEL=WARNING or UVICORN_ACCESS_LOG=false, to measure a setting",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("ORDERFLOW_TEST_REDIS_URL", LOCAL_REDIS_URL),
        help="a Redis server, without a db number "
        "(default: $ORDERFLOW_TEST_REDIS_URL, else %(default)s)",
    )


def raw_name_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--name``: the raw figures file in bench/results/raw; a run with ``--env`` writes
    ``<default>-custom`` unless named, so ``bench.plot`` keeps to the default run."""
    parser.add_argument(
        "--name",
        default=None,
        help=f"name of the raw figures file (default: {default}, or {default}-custom with --env)",
    )


def raw_name(args: argparse.Namespace, default: str) -> str:
    return str(args.name or (f"{default}-custom" if args.env else default))


def extra_env(pairs: Sequence[str]) -> dict[str, str]:
    """``--env NAME=VALUE`` arguments as environment variables."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env wants NAME=VALUE, not {pair!r}")
        env[name] = value
    return env


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as psycopg takes it."""
    return _libpq(url)


@contextlib.contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """A fresh database built by the Alembic migrations, dropped when the block ends."""
    name = f"orderflow_bench_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(server_url), autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(_libpq(server_url), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_db(server_url: str) -> Iterator[str]:
    """A Redis db number nobody else uses (claimed like the test runs claim theirs, from the
    top down), empty at the start and emptied again at the end."""
    base = server_url.rstrip("/")
    claims = redis.Redis.from_url(f"{base}/0", socket_timeout=5)
    try:
        databases = int(claims.config_get("databases")["databases"])
    except (redis.RedisError, KeyError, ValueError):
        databases = 16
    token = secrets.token_hex(8)
    for number in range(databases - 1, 0, -1):
        key = f"{CLAIM_PREFIX}{number}"
        if claims.set(key, token, nx=True, ex=4 * 3600):
            break
    else:
        raise RuntimeError(f"every Redis db number of {base} is claimed")
    url = f"{base}/{number}"
    store = redis.Redis.from_url(url, socket_timeout=5)
    store.flushdb()
    try:
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            store.flushdb()
            if claims.get(key) == token.encode():
                claims.delete(key)


def bench_settings(database_url: str, redis_url: str, state_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        state_dir=state_dir,
        jwt_secret=JWT_SECRET,
        log_json=True,
    )


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """What the system's processes are started with: the run's services and otherwise the
    embedded defaults (the production pacing, not the tests' fast one)."""
    path = os.environ.get("PYTHONPATH")
    return {
        "ORDERFLOW_DATABASE_URL": settings.database_url,
        "ORDERFLOW_REDIS_URL": settings.redis_url,
        "ORDERFLOW_STATE_DIR": str(settings.state_dir),
        "ORDERFLOW_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "ORDERFLOW_LOG_JSON": "true",
        # The limiter still runs (its Redis round trip is part of every order), it just never
        # refuses the benchmark's few customers.
        "ORDERFLOW_RATE_LIMIT_ORDERS_PER_CALLER": str(10**9),
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT),
        **extra,
    }


# --- processes ----------------------------------------------------------------------------


def stop_on_sigterm() -> None:
    """SIGTERM (and SIGHUP) end the run like Ctrl-C: every ``finally`` runs and stops the
    children. The children also die with us if we are killed (``PR_SET_PDEATHSIG``)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process, give it ``timeout`` to finish, then SIGKILL its whole process
    group (a worker's pool processes too), so nothing outlives it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


@dataclass
class Children:
    """The subprocesses of one benchmark, each in a session of its own with its log in
    ``log_dir``; ``stop_all`` (or leaving the ``with`` block) stops every one."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> int:
        if name in self.processes:
            raise RuntimeError(f"{name} is already running")
        merged = {**self.env, **(env or {})}
        process = spawn([sys.executable, *args], self.log(name), env=merged)
        self.processes[name] = process
        return process.pid

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def stop(self, name: str, timeout: float = 10.0) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            terminate(process, timeout)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def check(self) -> None:
        """Raise, with the end of its log, if a child has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{tail}")


def uvicorn_args(app: str, port: int, processes: int = 1) -> list[str]:
    """The API's server command as ``make run`` (workers.launcher) starts it: uvicorn with its
    defaults (uvloop and httptools, access log on) and the API's keep-alive, only the port
    differs; with ``processes`` > 1, as production runs it on a host with that many cores
    (``--workers``). A server closing idle connections after uvicorn's 5 s would race the
    clients' next requests after an untimed phase (the cart fill)."""
    keepalive = Settings.model_fields["api_keepalive_seconds"].default
    args = ["-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--timeout-keep-alive", str(keepalive)]
    return [*args, "--workers", str(processes)] if processes > 1 else args


def wait_until(
    ready: Callable[[], bool], timeout: float, what: str, children: Children | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if children is not None:
            children.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def rss_of_tree(pid: int) -> tuple[int, list[int]]:
    """Resident memory in bytes of a process and, separately, of each of its descendants."""
    try:
        parent = psutil.Process(pid)
        own = parent.memory_info().rss
        children = []
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                children.append(child.memory_info().rss)
        return own, children
    except psutil.NoSuchProcess:
        return 0, []


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder for logs and the state dir (e-mails, payments); kept if the run
    failed, so the logs can be read."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    failed = False
    try:
        yield path
    except BaseException:
        failed = True
        raise
    finally:
        if failed:
            print(f"logs kept in {path}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    user_ids: list[str]
    tokens: list[str]
    product_ids: list[str]


def seed(settings: Settings, users: int, products: int = 5) -> Seeded:
    """``users`` client accounts, each logged in once (an access token valid for hours), and
    ``products`` products with stock for a billion orders."""
    database = Database(make_engine(settings, pool_size=1))
    password_hash = passwords.hash_password(BENCH_PASSWORD)
    user_ids = [new_id("usr") for _ in range(users)]
    session_ids = [new_id("ses") for _ in range(users)]
    product_ids = [new_id("prod") for _ in range(products)]
    try:
        with database.unit_of_work() as session:
            session.execute(
                insert(User),
                [
                    {
                        "id": user_id,
                        "email": f"bench-{number}@example.com",
                        "name": f"Bench {number}",
                        "password_hash": password_hash,
                        "role": "client",
                    }
                    for number, user_id in enumerate(user_ids)
                ],
            )
            session.execute(
                insert(AuthSession),
                [{"id": s, "user_id": u} for s, u in zip(session_ids, user_ids, strict=True)],
            )
            session.execute(
                insert(Product),
                [
                    {
                        "id": product_id,
                        "sku": f"BENCH-{number:03d}",
                        "name": f"Bench product {number}",
                        "description": "",
                        "price_amount": 1000 + 250 * number,
                        "currency": "usd",
                        "stock": 1_000_000_000,
                        "active": True,
                    }
                    for number, product_id in enumerate(product_ids)
                ],
            )
            session.commit()
    finally:
        database.dispose()
    secret = settings.jwt_secret.get_secret_value()
    access = [
        tokens.issue_access_token(secret, u, s, ttl_seconds=int(timedelta(hours=6).total_seconds()))
        for u, s in zip(user_ids, session_ids, strict=True)
    ]
    return Seeded(user_ids, access, product_ids)


ADDRESS = {
    "name": "Jane Doe",
    "line1": "123 Main St",
    "line2": None,
    "city": "New York",
    "state": "NY",
    "postal_code": "10001",
    "country": "US",
}


def order_body(product_ids: Sequence[str], rng: random.Random) -> dict[str, Any]:
    """A real order: two lines of the catalogue, a card that succeeds."""
    first, second = rng.sample(list(product_ids), 2)
    return {
        "items": [
            {"product_id": first, "quantity": rng.randint(1, 3)},
            {"product_id": second, "quantity": 1},
        ],
        "shipping_address": ADDRESS,
        "payment_method": "pm_card_visa",
    }


# --- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(header), *(len(row[i]) for row in cells)) if cells else len(header)
        for i, header in enumerate(headers)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return (
            f"{value:,.0f}"
            if abs(value) >= 100
            else f"{value:,.1f}"
            if abs(value) >= 10
            else (f"{value:.2f}")
        )
    return str(value)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def write_raw(name: str, figures: dict[str, Any]) -> Path:
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    path = RAW_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **figures}, indent=1))
    return path


# --- where the CPU goes -------------------------------------------------------------------


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def postgres_backends(database_url: str) -> list[psutil.Process]:
    """The server processes serving our database (``postgres: … <db> …``), if we may see them."""
    name = make_url(database_url).database or ""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(process.info["cmdline"] or [])
            if line.startswith("postgres:") and f" {name} " in f" {line} ":
                found.append(process)
    return found


def redis_servers() -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-ser")
    ]


class CpuMeter:
    """CPU seconds used by groups of processes between ``start`` and ``stop``."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self.before: dict[str, list[tuple[psutil.Process, float]]] = {}
        self.started = 0.0

    @staticmethod
    def tree(pid: int, *, children_only: bool = False) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            kids = root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return kids if children_only else [root, *kids]

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {name: [(p, _cpu(p)) for p in find()] for name, find in self.groups.items()}

    def stop(self) -> dict[str, float]:
        used = {
            name: sum(max(0.0, _cpu(p) - cpu) for p, cpu in pairs)
            for name, pairs in self.before.items()
        }
        used["wall"] = time.monotonic() - self.started
        return used
