"""Finds real PostgreSQL and Redis for a test run: the ones named by
``ORDERFLOW_TEST_DATABASE_URL`` / ``ORDERFLOW_TEST_REDIS_URL``, else the standard local ports
when they answer, else embedded ones started for the run. ``ORDERFLOW_TEST_SERVICES=embedded``
forces the embedded ones, ``=local`` forbids them."""

from __future__ import annotations

import atexit
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

from orderflow.embedded.postgres import EmbeddedPostgres
from orderflow.embedded.redis import EmbeddedRedis

LOCAL_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
CLAIM_PREFIX = "orderflow-test-claim:"


@dataclass
class TestServices:
    database_url: str  # a database on a server where we may CREATE DATABASE
    redis_url: str  # without a db number
    max_redis_dbs: int
    kind: str
    _stop: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self._stop:
            self._stop.pop()()


def resolve_test_services() -> TestServices:
    mode = os.environ.get("ORDERFLOW_TEST_SERVICES", "auto")
    database_url = os.environ.get("ORDERFLOW_TEST_DATABASE_URL")
    redis_url = os.environ.get("ORDERFLOW_TEST_REDIS_URL")
    if mode != "embedded":
        database_url = database_url or (
            LOCAL_DATABASE_URL if _pg_answers(LOCAL_DATABASE_URL) else None
        )
        redis_url = redis_url or (LOCAL_REDIS_URL if _redis_answers(LOCAL_REDIS_URL) else None)
        if database_url and redis_url:
            return TestServices(database_url, redis_url, _redis_databases(redis_url), "local")
        if mode == "local":
            raise RuntimeError("ORDERFLOW_TEST_SERVICES=local, but no PostgreSQL or Redis answers")
    return _embedded()


def _embedded() -> TestServices:
    root = Path(tempfile.mkdtemp(prefix="orderflow-test-services-"))
    postgres = EmbeddedPostgres(root / "postgres")
    postgres.start()
    store = EmbeddedRedis(root / "redis", persist=False)
    store.start()
    services = TestServices(postgres.url(), store.url().rsplit("/", 1)[0], 256, "embedded")
    services._stop += [postgres.stop, store.stop]
    atexit.register(services.close)
    return services


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _redis_databases(url: str) -> int:
    try:
        return int(redis.Redis.from_url(url).config_get("databases")["databases"])
    except (redis.RedisError, KeyError, ValueError):
        return 16


def create_database(server_url: str, name: str) -> str:
    with psycopg.connect(_libpq(server_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(_libpq(server_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim_redis_db(redis_url: str, max_dbs: int) -> tuple[int, Callable[[], None]]:
    """Claim a Redis db number no other test run or worker uses (db 0 holds the claims and
    is left to ``make run``); empty it; answer it and how to give it back."""
    claims = redis.Redis.from_url(f"{redis_url.rstrip('/')}/0")
    token = secrets.token_hex(8)
    for number in range(1, max_dbs):
        if claims.set(f"{CLAIM_PREFIX}{number}", token, nx=True, ex=7200):
            redis.Redis.from_url(f"{redis_url.rstrip('/')}/{number}").flushdb()

            def release(number: int = number) -> None:
                if claims.get(f"{CLAIM_PREFIX}{number}") == token.encode():
                    claims.delete(f"{CLAIM_PREFIX}{number}")

            return number, release
    raise RuntimeError(f"all {max_dbs - 1} Redis test dbs are claimed by other runs")
