"""The engine's pool pings a connection only after it sat idle, and replaces a dead one."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from orderflow import db
from orderflow.settings import Settings


@pytest.fixture
def engine_pinging_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[float], Engine]]:
    """Engines of one connection whose pool pings after the given idle seconds."""
    engines: list[Engine] = []

    def make(idle_seconds: float) -> Engine:
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", idle_seconds)
        engines.append(db.make_engine(settings, pool_size=1))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def _backend_of(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")) or 0)


def _kill_pooled_connection(engine: Engine, settings: Settings) -> int:
    """Use ``engine``'s one connection, return it to the pool, then end its server process
    from another engine, as a restart would; answers that process's id."""
    pid = _backend_of(engine)
    other = db.make_engine(settings, pool_size=1)
    try:
        with other.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()
    return pid


def test_an_idle_connection_that_died_is_replaced_unseen(
    engine_pinging_after: Callable[[float], Engine], settings: Settings
) -> None:
    engine = engine_pinging_after(0.0)
    dead = _kill_pooled_connection(engine, settings)

    # The ping at checkout finds the connection dead and the pool hands out a new one.
    assert _backend_of(engine) not in (dead, 0)


def test_a_connection_just_returned_is_not_pinged_and_fails_once(
    engine_pinging_after: Callable[[float], Engine], settings: Settings
) -> None:
    engine = engine_pinging_after(3600.0)
    dead = _kill_pooled_connection(engine, settings)

    # The price of skipping the ping: the first use of a connection that died within the
    # idle window fails (the API answers 503, a task retries) ...
    with pytest.raises(OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    # ... and the pool has dropped it: the next checkout connects afresh.
    assert _backend_of(engine) not in (dead, 0)
