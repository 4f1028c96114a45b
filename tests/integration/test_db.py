"""The unit of work keeps only what it is told to commit."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from orderflow.catalogue.service import NewProduct, create_product
from orderflow.db import Database, make_engine
from orderflow.models import Product
from orderflow.money import Money
from orderflow.settings import Settings


def _products(database: Database) -> int:
    with database.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Product)) or 0


def _new(sku: str) -> NewProduct:
    return NewProduct(sku=sku, name="A product", price=Money(100, "usd"), stock=1)


def test_a_block_that_neither_commits_nor_raises_leaves_nothing(clean_database: Database) -> None:
    with clean_database.unit_of_work() as session:
        create_product(session, _new("SKU-UNCOMMITTED"))
        session.flush()  # written, inside the transaction
    assert _products(clean_database) == 0


def test_a_committed_block_keeps_its_work(clean_database: Database) -> None:
    with clean_database.unit_of_work() as session:
        create_product(session, _new("SKU-COMMITTED"))
        session.commit()
    assert _products(clean_database) == 1


def test_a_block_that_raises_before_committing_leaves_nothing(clean_database: Database) -> None:
    def fail_half_way() -> None:
        with clean_database.unit_of_work() as session:
            create_product(session, _new("SKU-RAISED"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert _products(clean_database) == 0


def test_a_database_that_never_answers_fails_a_connection_within_the_connect_timeout() -> None:
    """A server behind a partition (here: a port that accepts and never speaks) fails the
    engine's connection after ``ORDERFLOW_DATABASE_CONNECT_TIMEOUT_SECONDS``, not after the
    kernel's minutes; the API turns that ``OperationalError`` into 503."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nothing ever answers
        port = silent.getsockname()[1]
        settings = Settings(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
            database_connect_timeout_seconds=2,
        )
        engine = make_engine(settings)
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        waited = time.monotonic() - started
        engine.dispose()
    assert 1.5 <= waited < 10
