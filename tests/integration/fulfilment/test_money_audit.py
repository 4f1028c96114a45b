"""The audit's money checks (orderflow/audit.py): a paid order changed, refunded and credited
through the services passes them, and each planted break is found by its own check.

No workers: each step is called as its task would call it, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.fulfilment.changes import OrderChange, change_order
from orderflow.fulfilment.charging import begin_charge, record_charge_result
from orderflow.fulfilment.crediting import issue_credit_note
from orderflow.fulfilment.invoicing import generate_invoice
from orderflow.fulfilment.refund_requests import request_refund
from orderflow.fulfilment.refunds import refund_payment
from orderflow.fulfilment.stock import reserve_stock
from orderflow.models import Product, User
from orderflow.money import Money
from orderflow.orders.repository import OrderRepository
from orderflow.orders.service import LineRequest, Viewer, place_order
from orderflow.payments import LocalPaymentProvider
from orderflow.statuses import RefundStatus
from tests.conftest import place_command

#: One provider for the whole module: it remembers the charges it refunds (in memory).
PROVIDER = LocalPaymentProvider()


@dataclass(frozen=True)
class World:
    order_id: str
    #: The refund of the change, then a manual one: both succeeded, both credited.
    refund_ids: tuple[str, str]


def paid_and_invoiced(
    database: Database, customer: User, *lines: tuple[Product, int], invoiced: bool = True
) -> str:
    """An order placed, reserved, charged on the local provider and invoiced (or not yet)."""
    with database.unit_of_work() as session:
        order = place_order(session, place_command(customer.id, *((p.id, q) for p, q in lines)))
        session.commit()
    with database.unit_of_work() as session:
        reserve_stock(session, order.id)
        session.commit()
    with database.unit_of_work() as session:
        request = begin_charge(session, order.id)
        session.commit()
    assert request is not None
    result = PROVIDER.charge(
        order_id=order.id,
        amount=request.amount,
        payment_method=request.payment_method,
        idempotency_key=request.idempotency_key,
    )
    with database.unit_of_work() as session:
        record_charge_result(session, result, order_id=order.id)
        session.commit()
    if invoiced:
        with database.unit_of_work() as session:
            generate_invoice(session, order.id)
            session.commit()
    return order.id


def refund_and_credit(database: Database, order_id: str, refund_id: str) -> None:
    refund_payment(database, PROVIDER, order_id, refund_id)
    with database.unit_of_work() as session:
        assert issue_credit_note(session, order_id, refund_id) is not None
        session.commit()


@pytest.fixture
def world(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> World:
    customer = make_user()
    pen, ink = make_product(price=2500, stock=10), make_product(price=700, stock=10)
    order_id = paid_and_invoiced(clean_database, customer, (pen, 3), (ink, 1))
    with clean_database.unit_of_work() as session:
        change_order(
            session,
            Viewer(customer.id, is_admin=False),
            order_id,
            OrderChange(items=[LineRequest(pen.id, 1)]),
        )
        session.commit()
    with clean_database.unit_of_work() as session:
        (change_refund,) = OrderRepository(session).refunds_of(order_id)
        session.commit()
    refund_and_credit(clean_database, order_id, change_refund.id)
    with clean_database.unit_of_work() as session:
        manual = request_refund(session, order_id, Money(700, "usd"), "ink leaked", "admin")
        session.commit()
    refund_and_credit(clean_database, order_id, manual.id)
    return World(order_id, (change_refund.id, manual.id))


def _money_violations(database: Database, *breaks: str, **parameters: str) -> set[str]:
    """The money checks that fail once ``breaks`` ran (rolled back afterwards)."""
    with database.unit_of_work() as session:
        for statement in breaks:
            session.execute(text(statement), parameters)
        found = {v.check for v in audit(session) if v.check in MONEY_CHECKS}
        session.rollback()
    return found


MONEY_CHECKS = {
    "paid_order_has_one_capture",
    "captured_money_adds_up",
    "refund_within_capture",
    "refunds_within_charge",
    "refund_counters_match_refunds",
    "credit_note_numbers_gapless",
    "credit_note_matches_refund",
    "credit_note_for_every_refund_after_invoice",
    "reservation_matches_lines",
    "confirmed_order_holds_its_stock",
    "stock_conserved",
    "stock_matches_ledger",
}


def test_a_changed_refunded_and_credited_order_passes(
    world: World, clean_database: Database
) -> None:
    assert _money_violations(clean_database) == set()
    with clean_database.unit_of_work() as session:
        order = OrderRepository(session).get(world.order_id)
        assert order is not None
        # 3 pens + ink = 8200 captured; 2 pens (5000) taken off, then 700 refunded by hand.
        assert (order.captured_amount, order.total_amount, order.reduced_amount) == (
            8200,
            3200,
            5000,
        )
        assert order.refunded_amount == 5700
        numbers = session.execute(
            text("SELECT number, amount FROM credit_notes ORDER BY sequence")
        ).all()
    assert [amount for _, amount in numbers] == [5000, 700]
    assert [number[-6:] for number, _ in numbers] == ["000001", "000002"]


def test_issuing_a_credit_note_again_changes_nothing(
    world: World, clean_database: Database
) -> None:
    with clean_database.unit_of_work() as session:
        again = issue_credit_note(session, world.order_id, world.refund_ids[0])
        session.commit()
        count = session.scalar(text("SELECT count(*) FROM credit_notes"))
    assert again is not None
    assert again.number.endswith("000001")
    assert count == 2


@pytest.mark.parametrize(
    ("breaks", "check"),
    [
        # A refund row beyond the capture, the counters left alone.
        (
            [
                "INSERT INTO refunds (id, order_id, amount, currency, status) "
                "VALUES ('ref_planted', :order_id, 9000, 'usd', 'succeeded')"
            ],
            "refunds_within_charge",
        ),
        (
            ["UPDATE orders SET refunded_amount = refunded_amount - 1 WHERE id = :order_id"],
            "refund_counters_match_refunds",
        ),
        (
            ["UPDATE refunds SET status = 'failed' WHERE id = :refund_id"],
            "refund_counters_match_refunds",
        ),
        (
            ["UPDATE orders SET reduced_amount = 0 WHERE id = :order_id"],
            "paid_order_has_one_capture",
        ),
        (
            [
                "UPDATE credit_notes SET sequence = 3, "
                "number = 'CN-' || year || '-000003' WHERE refund_id = :refund_id"
            ],
            "credit_note_numbers_gapless",
        ),
        (
            ["UPDATE credit_notes SET amount = amount + 1 WHERE refund_id = :refund_id"],
            "credit_note_matches_refund",
        ),
        (
            ["UPDATE refunds SET status = 'pending' WHERE id = :refund_id"],
            "credit_note_matches_refund",
        ),
        (
            ["DELETE FROM credit_notes WHERE refund_id = :refund_id"],
            "credit_note_for_every_refund_after_invoice",
        ),
        # A lowered line whose reservation still holds the old quantity.
        (
            [
                "UPDATE order_lines SET quantity = 2, subtotal_amount = 5000 "
                "WHERE order_id = :order_id AND quantity = 1 AND unit_price_amount = 2500"
            ],
            "reservation_matches_lines",
        ),
    ],
)
def test_each_planted_break_is_found(
    world: World, clean_database: Database, breaks: list[str], check: str
) -> None:
    found = _money_violations(
        clean_database, *breaks, order_id=world.order_id, refund_id=world.refund_ids[1]
    )
    assert check in found


def test_a_change_refund_is_capped_by_what_is_left_to_refund(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> None:
    customer = make_user()
    pen = make_product(price=1000, stock=10)
    order_id = paid_and_invoiced(clean_database, customer, (pen, 3))
    with clean_database.unit_of_work() as session:
        by_hand = request_refund(session, order_id, Money(2500, "usd"), "goodwill", "admin")
        session.commit()
    refund_and_credit(clean_database, order_id, by_hand.id)
    with clean_database.unit_of_work() as session:
        change_order(
            session,
            Viewer(customer.id, is_admin=False),
            order_id,
            OrderChange(items=[LineRequest(pen.id, 1)]),
        )
        session.commit()
    with clean_database.unit_of_work() as session:
        refunds = OrderRepository(session).refunds_of(order_id)
        session.commit()
    # 2000 taken off, but only 500 of the capture was left to give back.
    assert [(r.amount, r.status) for r in refunds] == [
        (2500, RefundStatus.SUCCEEDED),
        (500, RefundStatus.PENDING),
    ]
    refund_and_credit(clean_database, order_id, refunds[1].id)
    assert _money_violations(clean_database) == set()


def test_a_refund_before_the_invoice_is_credited_once_the_invoice_exists(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> None:
    customer, pen = make_user(), make_product(price=1000, stock=10)
    order_id = paid_and_invoiced(clean_database, customer, (pen, 2), invoiced=False)
    with clean_database.unit_of_work() as session:
        refund = request_refund(session, order_id, Money(300, "usd"), "scratched", "admin")
        session.commit()
    refund_payment(clean_database, PROVIDER, order_id, refund.id)
    with clean_database.unit_of_work() as session:  # no invoice yet: nothing to credit
        assert issue_credit_note(session, order_id, refund.id) is None
        session.commit()
    with clean_database.unit_of_work() as session:
        generate_invoice(session, order_id)
        session.commit()
    with clean_database.unit_of_work() as session:
        scheduled = session.scalars(
            text(
                "SELECT payload->>'refund_id' FROM outbox "
                "WHERE topic = 'orderflow.issue_credit_note' AND order_id = :o"
            ),
            {"o": order_id},
        ).all()
        # Not when the refund succeeded (no invoice then): by the invoice step.
        assert scheduled == [refund.id]
        note = issue_credit_note(session, order_id, refund.id)
        assert note is not None
        assert (note.amount, note.refund_id) == (300, refund.id)
        session.commit()
    assert _money_violations(clean_database) == set()
