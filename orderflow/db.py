"""Engine and unit of work. Services take a Session and never commit: the caller does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from orderflow.settings import ConfigError, Settings


def make_engine(settings: Settings, *, pool_size: int = 10) -> Engine:
    """Build the engine; called from start-up hooks, never at import time."""
    if not settings.database_url:
        raise ConfigError(
            "ORDERFLOW_DATABASE_URL is not set: point it at PostgreSQL, e.g. "
            "postgresql+psycopg://user@127.0.0.1:5432/orderflow (make run sets it for you)"
        )
    return create_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"options": "-c timezone=UTC"},
    )


class Database:
    """Holds the engine and hands out units of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=True)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """Commit when the block ends normally, roll back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
