"""Real PostgreSQL and Redis for a test run (used by ``tests/conftest.py``; not a conftest).

Each service is, in this order: the one named by ``ORDERFLOW_TEST_DATABASE_URL`` /
``ORDERFLOW_TEST_REDIS_URL``; else the one on its standard local port when it answers; else an
embedded one started for the run in a temp folder and stopped after it.
``ORDERFLOW_TEST_SERVICES=embedded`` forces the embedded ones, ``=local`` forbids them."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from orderflow.embedded.postgres import EmbeddedPostgres
from orderflow.embedded.redis import EmbeddedRedis

MODE_ENV = "ORDERFLOW_TEST_SERVICES"
DATABASE_ENV = "ORDERFLOW_TEST_DATABASE_URL"
REDIS_ENV = "ORDERFLOW_TEST_REDIS_URL"
LOCAL_DATABASE_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
)
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
#: Claims of Redis db numbers live in db 0 under this prefix (``bench`` uses the same).
CLAIM_PREFIX = "orderflow-test-claim:"
CLAIM_SECONDS = 7200
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class TestServices:
    """Where the run's servers are. ``close()`` stops whatever was started for it."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    database_url: str  # a database on a server where the tests may CREATE DATABASE
    redis_url: str  # the server, without a db number
    max_redis_dbs: int
    kind: str = "local"  # which each one is, e.g. "database: local, redis: embedded"
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


def resolve_test_services() -> TestServices:
    mode = os.environ.get(MODE_ENV, "auto")
    if mode not in ("auto", "local", "embedded"):
        raise ValueError(f"{MODE_ENV}={mode!r}: use auto, local or embedded")
    closers: list[Callable[[], None]] = []
    services = TestServices("", "", 16, _closers=closers)
    atexit.register(services.close)  # a run that dies before pytest_unconfigure
    try:
        database_url = None if mode == "embedded" else _configured_database()
        redis_url = None if mode == "embedded" else _configured_redis()
        if mode == "local" and not (database_url and redis_url):
            raise RuntimeError(
                f"{MODE_ENV}=local, but no PostgreSQL or Redis found: set {DATABASE_ENV} and "
                f"{REDIS_ENV}, or start them on 127.0.0.1:5432 and 127.0.0.1:6379"
            )
        kinds = [f"database: {_origin(DATABASE_ENV)}", f"redis: {_origin(REDIS_ENV)}"]
        root = Path(tempfile.mkdtemp(prefix="orderflow-test-"))
        closers.append(lambda: shutil.rmtree(root, ignore_errors=True))
        if database_url is None:
            postgres = EmbeddedPostgres(root / "postgres", durable=False)
            closers.append(postgres.stop)
            postgres.start()
            database_url, kinds[0] = postgres.url(), "database: embedded"
        if redis_url is None:
            store = EmbeddedRedis(root / "redis", persist=False)
            closers.append(store.stop)
            store.start()
            redis_url, kinds[1] = store.base_url, "redis: embedded"
    except BaseException:
        services.close()
        raise
    services.database_url, services.redis_url = database_url, redis_url
    services.max_redis_dbs = _redis_databases(redis_url)
    services.kind = ", ".join(kinds)
    return services


def _origin(variable: str) -> str:
    return variable if os.environ.get(variable) else "local"


def _configured_database() -> str | None:
    url = os.environ.get(DATABASE_ENV)
    if url:
        if not _pg_answers(url):
            raise RuntimeError(f"{DATABASE_ENV} is set, but no PostgreSQL answers there")
        return url
    return next((url for url in LOCAL_DATABASE_URLS if _pg_answers(url)), None)


def _configured_redis() -> str | None:
    url = os.environ.get(REDIS_ENV)
    if url:
        url = _without_db(url)
        if not _redis_answers(url):
            raise RuntimeError(f"{REDIS_ENV} is set, but no Redis answers there")
        return url
    return LOCAL_REDIS_URL if _redis_answers(LOCAL_REDIS_URL) else None


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as ``psycopg.connect`` takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _without_db(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=""))


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _redis_databases(url: str) -> int:
    """How many dbs the server has; 16 (Redis's default) where CONFIG is not allowed."""
    try:
        with redis.Redis.from_url(url) as client:
            return int(client.config_get("databases")["databases"])
    except (redis.RedisError, KeyError, ValueError):
        return 16


def create_database(server_url: str, name: str) -> str:
    """(Re)create database ``name`` on the server of ``server_url``; answer its URL."""
    drop_database(server_url, name)
    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, ending the sessions still connected to it."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        force = sql.SQL(" WITH (FORCE)" if connection.info.server_version >= 130000 else "")
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force)
        )


def claim_redis_db(redis_url: str, max_dbs: int) -> tuple[int, Callable[[], None]]:
    """Claim a db number in 1..max_dbs-1 that no other test run, xdist worker or benchmark
    holds (claims are ``SET NX EX`` keys in db 0, which is left to ``make run``); empty it;
    answer it and the function that empties it and gives it back."""
    base = redis_url.rstrip("/")
    claims = redis.Redis.from_url(f"{base}/0")
    token = secrets.token_hex(8)
    for number in range(1, max_dbs):
        key = f"{CLAIM_PREFIX}{number}"
        if claims.set(key, token, nx=True, ex=CLAIM_SECONDS):
            with redis.Redis.from_url(f"{base}/{number}") as client:
                client.flushdb()

            def release(number: int = number, key: str = key) -> None:
                if claims.get(key) == token.encode():  # not expired and claimed by others
                    with redis.Redis.from_url(f"{base}/{number}") as client:
                        client.flushdb()
                claims.eval(_RELEASE, 1, key, token)

            return number, release
    raise RuntimeError(f"all {max_dbs - 1} Redis test dbs are claimed by other runs")
