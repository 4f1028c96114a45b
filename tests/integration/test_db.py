"""The unit of work keeps only what it is told to commit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orderflow.catalogue.service import NewProduct, create_product
from orderflow.db import Database
from orderflow.models import Product
from orderflow.money import Money


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
