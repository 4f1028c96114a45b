"""The promises of DESIGN.md as checks over a system at rest, shared by the end-to-end,
chaos and load tests."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select, text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.models import Order, Product, StockReservation
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub
from tests.system import wait_until


def wait_for_rest(
    database: Database, timeout: float, meanwhile: Callable[[], object] = lambda: None
) -> None:
    """Wait until everything is at rest, calling ``meanwhile`` at every look (a supervisor's
    round, say); on time-out, say what is still moving or wrong."""

    def at_rest() -> bool:
        meanwhile()
        return everything_at_rest(database)

    try:
        wait_until(at_rest, timeout, interval=0.5)
    except TimeoutError:
        with database.unit_of_work() as session:
            found = [str(v) for v in audit(session)][:10]
            pending = session.scalar(text("SELECT count(*) FROM orders WHERE status='pending'"))
            session.commit()
        raise AssertionError(f"not at rest after {timeout} s: {pending} pending; {found}") from None


def everything_at_rest(database: Database) -> bool:
    """Every order confirmed, failed or cancelled, or waiting on a named event (its
    customer's action, or an operator's re-drive after the provider stayed down), and
    everything it is owed (invoice, e-mails, refund) delivered: the audit is clean."""
    with database.unit_of_work() as session:
        moving = session.scalar(
            text(
                """SELECT count(*) FROM orders o WHERE o.status = 'pending' AND NOT EXISTS (
                     SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.kind = 'charge'
                     AND p.status IN ('requires_action', 'unavailable'))"""
            )
        )
        result = moving == 0 and not audit(session)
        session.commit()
        return result


def assert_promises_kept(
    database: Database, initial_stock: dict[str, int], accepted: set[str]
) -> dict[str, int]:
    """Check every promise; answer how many orders ended in each status."""
    with database.unit_of_work() as session:
        assert audit(session) == []
        stored = set(session.scalars(select(Order.id)))
        assert accepted <= stored, f"lost orders: {sorted(accepted - stored)[:5]}"
        for product_id, start in initial_stock.items():
            left = session.scalar(select(Product.stock).where(Product.id == product_id))
            held = session.scalar(
                select(func.coalesce(func.sum(StockReservation.quantity), 0)).where(
                    StockReservation.product_id == product_id,
                    StockReservation.released_at.is_(None),
                )
            )
            back = session.scalar(  # returned units put back on the shelf, once
                text(
                    """SELECT coalesce(sum(received_quantity), 0) FROM return_lines
                       WHERE product_id = :p AND restocked_at IS NOT NULL"""
                ),
                {"p": product_id},
            )
            assert left is not None
            assert left >= 0
            assert left + held - back == start, (
                f"{product_id}: {left} left + {held} held - {back} restocked != {start}"
            )
        captured, confirmed_total = session.execute(
            text(
                """SELECT
                     (SELECT coalesce(sum(amount), 0) FROM payments
                       WHERE kind = 'charge' AND status = 'succeeded')
                     - (SELECT coalesce(sum(amount), 0) FROM refunds
                       WHERE status = 'succeeded'),
                     (SELECT coalesce(sum(total_amount), 0) FROM orders
                       WHERE status IN ('confirmed', 'shipped', 'delivered'))
                     - (SELECT coalesce(sum(r.amount), 0) FROM refunds r
                          JOIN orders o ON o.id = r.order_id
                        WHERE r.status = 'succeeded'
                          AND o.status IN ('confirmed', 'shipped', 'delivered'))"""
            )
        ).one()
        assert captured == confirmed_total
        result = dict(
            session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
        )
        session.commit()
        return result


def assert_no_double_effects_at_providers(
    database: Database, stripe: StripeStub, sendgrid: SendGridStub
) -> None:
    """Counted where the effects arrived: one capture and at most one refund per order, what
    was captured and not refunded is what confirmed orders cost, one e-mail per key."""
    with database.unit_of_work() as session:
        orders = session.execute(select(Order.id, Order.status, Order.total_amount)).all()
        session.commit()
    kept = 0
    for order_id, status, total in orders:
        assert len(stripe.succeeded_charges(order_id)) <= 1, order_id
        assert len(stripe.refunds(order_id=order_id)) <= 1, order_id
        captured = stripe.captured_amount(order_id)
        assert captured == (total if status in ("confirmed", "shipped", "delivered") else 0)
        kept += captured
    duplicates = {key: n for key, n in sendgrid.count_by_key().items() if n > 1}
    assert duplicates == {}, f"e-mails sent more than once: {duplicates}"
    assert kept == stripe.captured_amount()
