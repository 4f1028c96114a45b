"""Start-up checks shared by the API, the workers, the relay and the ``orderflow`` command.

A bad setting, an unparsable or unreachable ``ORDERFLOW_DATABASE_URL`` or
``ORDERFLOW_REDIS_URL`` becomes a :class:`ConfigError` whose message is one line naming the
variable and the fix; :func:`exit_on_config_error` prints it and exits non-zero, so nobody
has to read a traceback to learn that PostgreSQL is not running.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from orderflow.settings import ConfigError, Settings, describe_settings_error

CONNECT_TIMEOUT_SECONDS = 3
_DATABASE_EXAMPLE = "postgresql+psycopg://user:password@host:5432/orderflow"
_REDIS_EXAMPLE = "redis://host:6379/0"

T = TypeVar("T")


def load_settings() -> Settings:
    """The settings from the environment, read now, or a one-line ``ConfigError``."""
    try:
        return Settings()
    except ValueError as error:  # pydantic's ValidationError and our ConfigError
        raise ConfigError(describe_settings_error(error)) from None


def check_database(settings: Settings) -> None:
    """The database URL parses, names a driver we have, and the server answers."""
    if not settings.database_url:
        raise ConfigError(
            "ORDERFLOW_DATABASE_URL is not set: point it at PostgreSQL, e.g. "
            f"{_DATABASE_EXAMPLE} (make run sets it for you)"
        )
    try:
        url = make_url(settings.database_url)
        engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as error:
        raise ConfigError(
            f"ORDERFLOW_DATABASE_URL is not a usable database URL ({_reason(error)}): "
            f"use the form {_DATABASE_EXAMPLE}"
        ) from None
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        raise ConfigError(
            f"ORDERFLOW_DATABASE_URL: cannot use the database at {where} ({_reason(error)}): "
            "start PostgreSQL, create the database, or fix the host, port, user or password"
        ) from None
    finally:
        engine.dispose()


def check_broker(settings: Settings) -> None:
    """The broker URL parses and Redis answers a PING."""
    if not settings.redis_url:
        raise ConfigError(
            f"ORDERFLOW_REDIS_URL is not set: point it at Redis, e.g. {_REDIS_EXAMPLE} "
            "(make run sets it for you)"
        )
    try:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except ValueError as error:
        raise ConfigError(
            f"ORDERFLOW_REDIS_URL is not a usable Redis URL ({_reason(error)}): "
            f"use the form {_REDIS_EXAMPLE}"
        ) from None
    try:
        client.ping()
    except redis.RedisError as error:
        pool = client.connection_pool.connection_kwargs
        where = f"{pool.get('host', pool.get('path', '?'))}:{pool.get('port', '')}"
        raise ConfigError(
            f"ORDERFLOW_REDIS_URL: cannot reach Redis at {where} ({_reason(error)}): "
            "start Redis or fix the host, port, db number or password"
        ) from None
    finally:
        client.close()


def check_services(settings: Settings, *, database: bool = True, broker: bool = True) -> None:
    if database:
        check_database(settings)
    if broker:
        check_broker(settings)


def exit_on_config_error(call: Callable[[], T], *, program: str = "orderflow") -> T:
    """Run ``call``; on a ``ConfigError`` print its one line and exit with status 2."""
    try:
        return call()
    except ConfigError as error:
        fail(str(error), program=program)


def fail(message: str, *, program: str = "orderflow") -> NoReturn:
    print(f"{program}: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


@contextmanager
def config_errors_exit(program: str = "orderflow") -> Iterator[None]:
    try:
        yield
    except ConfigError as error:
        fail(str(error), program=program)


def _reason(error: BaseException) -> str:
    """The cause in a few words, without the URL (it may hold a password)."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    for marker in ("failed: ", "error: "):
        if marker in reason:
            reason = reason.rsplit(marker, 1)[1]
    if "@" in reason and "://" in reason:  # a URL with its credentials
        return type(cause).__name__
    return reason[:160]
