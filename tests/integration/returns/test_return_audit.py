"""``orderflow audit`` over returns: clean after real returns, and each return check fires
when its promise is broken (each break made inside a transaction that is rolled back)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from orderflow.audit import CHECK_NAMES, audit
from orderflow.db import Database
from orderflow.models import Product
from tests.integration.returns.conftest import (
    ShippedOrder,
    ask_return,
    receive,
    wait_for_return,
)

pytestmark = pytest.mark.workers


@pytest.fixture
def returns_made(
    shipped_order: ShippedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> dict[str, Any]:
    """One order of 3 pens, shipped and delivered: a return of 2 received (restocked) and
    refunded, and a return of 1 still requested."""
    pen = make_product(price=1000, stock=5)
    order = shipped_order((pen, 3))
    received = ask_return(customer, order["id"], (pen.id, 2)).json()["id"]
    admin.post(f"/returns/{received}/approve")
    assert receive(admin, received, (pen.id, 2, True)).status_code == 200
    wait_for_return(admin, received, "refunded")
    requested = ask_return(customer, order["id"], (pen.id, 1)).json()["id"]
    with database.unit_of_work() as session:
        assert [str(v) for v in audit(session)] == []
    return {"order_id": order["id"], "received": received, "requested": requested, "pen": pen}


def _broken(database: Database, *statements: str, **params: Any) -> set[str]:
    """The checks that fail once ``statements`` ran; nothing of it is kept."""
    with database.unit_of_work() as session:
        for statement in statements:
            session.execute(text(statement), params)
        return _checks(session)


def _checks(session: Session) -> set[str]:
    return {violation.check for violation in audit(session)}


def test_the_return_checks_are_listed() -> None:
    for name in ("returned_within_shipped", "restock_once", "return_refund_matches",
                 "return_lines_of_their_order", "return_moves_allowed"):  # fmt: skip
        assert name in CHECK_NAMES


def test_returned_more_than_shipped(returns_made: dict[str, Any], database: Database) -> None:
    broken = _broken(
        database,
        "UPDATE return_lines SET quantity = 2 WHERE return_id = :r",
        r=returns_made["requested"],
    )
    assert "returned_within_shipped" in broken
    # A shipment that never left (cancelled) no longer counts as shipped either.
    assert "returned_within_shipped" in _broken(
        database,
        "UPDATE shipments SET status = 'cancelled' WHERE order_id = :o",
        o=returns_made["order_id"],
    )
    # A rejected return holds nothing: then the same lines fit again.
    assert "returned_within_shipped" not in _broken(
        database,
        "UPDATE return_lines SET quantity = 2 WHERE return_id = :r",
        "UPDATE returns SET status = 'rejected' WHERE id = :r",
        r=returns_made["requested"],
    )


def test_a_restock_missing_from_the_ledger(
    returns_made: dict[str, Any], database: Database
) -> None:
    broken = _broken(database, "DELETE FROM stock_ledger WHERE side = 'return'")
    assert "restock_once" in broken
    assert "stock_conserved" in broken  # the shelf moved with nothing to account for it


def test_a_restock_recorded_twice(returns_made: dict[str, Any], database: Database) -> None:
    broken = _broken(
        database,
        "DROP INDEX stock_ledger_return_once",
        """INSERT INTO stock_ledger (product_id, side, kind, delta, order_id, return_line_id)
           SELECT product_id, side, kind, delta, order_id, return_line_id FROM stock_ledger
           WHERE side = 'return'""",
    )
    assert "restock_once" in broken


def test_a_restock_owed_but_never_made(returns_made: dict[str, Any], database: Database) -> None:
    broken = _broken(
        database,
        "DELETE FROM stock_ledger WHERE side = 'return'",
        "UPDATE return_lines SET restocked_at = NULL WHERE return_id = :r",
        r=returns_made["received"],
    )
    assert "restock_once" in broken


def test_a_restock_of_no_return_line(returns_made: dict[str, Any], database: Database) -> None:
    broken = _broken(
        database,
        """INSERT INTO stock_ledger (product_id, side, kind, delta, order_id, return_line_id)
           VALUES (:p, 'return', 'restock', 1, :o, 987654321)""",
        p=returns_made["pen"].id,
        o=returns_made["order_id"],
    )
    assert "restock_once" in broken


def test_a_return_whose_refund_does_not_match(
    returns_made: dict[str, Any], database: Database
) -> None:
    broken = _broken(
        database,
        "UPDATE returns SET refund_amount = refund_amount + 1 WHERE id = :r",
        r=returns_made["received"],
    )
    assert "return_refund_matches" in broken


def test_a_return_that_skipped_a_status(returns_made: dict[str, Any], database: Database) -> None:
    broken = _broken(
        database,
        "UPDATE returns SET status = 'refunded', received_at = now() WHERE id = :r",
        r=returns_made["requested"],
    )
    assert "return_moves_allowed" in broken
