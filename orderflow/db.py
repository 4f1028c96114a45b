"""Engine and unit of work. Services take a Session and never commit: the caller does, by
saying so (``session.commit()`` at the end of its unit of work)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from orderflow.settings import ConfigError, Settings


def make_engine(settings: Settings, *, pool_size: int = 10) -> Engine:
    """Build the engine; called from start-up hooks, never at import time."""
    if not settings.database_url:
        raise ConfigError(
            "ORDERFLOW_DATABASE_URL is not set: point it at PostgreSQL, e.g. "
            "postgresql+psycopg://user@127.0.0.1:5432/orderflow (make run sets it for you)"
        )
    engine = create_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={"options": "-c timezone=UTC", **network_timeouts(settings)},
    )
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def network_timeouts(settings: Settings) -> dict[str, int]:
    """libpq parameters that bound every wait on the network, so a partition from
    PostgreSQL fails a request in seconds (the API answers 503) instead of hanging it until
    the kernel gives up (minutes for sent data, hours for an idle connection): the connect
    timeout, ``tcp_user_timeout`` for data sent and never acknowledged, and keepalive probes
    for a connection waiting on an answer that will never come."""
    network = settings.database_network_timeout_seconds
    idle = max(1, int(network / 2))
    return {
        "connect_timeout": settings.database_connect_timeout_seconds,
        "tcp_user_timeout": int(network * 1000),
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": max(1, int(network / 4)),
        "keepalives_count": 2,
    }


#: A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """``pool_pre_ping``, except for a connection back in the pool for less than
    ``idle_seconds``: that one just worked. Under load almost every checkout is such a one,
    and the ping is a round trip per transaction (7 % of an order's CPU in bench.pipeline).
    A connection that fails its ping is replaced (the pool retries on ``DisconnectionError``).
    After a restart of PostgreSQL, only connections returned in the last ``idle_seconds``
    can still fail at first use, which the API answers 503 and a task retries."""

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # new, or back only just now
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"stale pooled connection: {error}") from error


_RETURNED_AT = "orderflow.returned_at"


class Database:
    """Holds the engine and hands out units of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=True)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose work is kept only if the block calls ``session.commit()``: a block
        that ends without committing, normally or by an exception, leaves nothing behind."""
        session = self._sessions()
        try:
            yield session
        finally:
            # Rolls back whatever was not committed; the objects read stay usable, detached.
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
