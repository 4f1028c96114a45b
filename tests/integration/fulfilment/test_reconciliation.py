"""The reconciler heals a payment the provider took but the worker never recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from orderflow.db import Database
from orderflow.fulfilment import charging, moves, refunds, stock
from orderflow.fulfilment.sweeper import find_stalled_work
from orderflow.idempotency import charge_idempotency_key
from orderflow.models import Order, Product, User
from orderflow.money import Money
from orderflow.orders import service as orders
from orderflow.payments import LocalPaymentProvider
from orderflow.steps import Step
from tests.conftest import place_command


def test_capture_unrecorded_before_a_cancel_is_found_and_refunded(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    tmp_path: Path,
) -> None:
    db, owner = clean_database, make_user()
    product = make_product(price=2500, stock=3)
    provider = LocalPaymentProvider(store_dir=tmp_path / "payments")
    with db.unit_of_work() as session:
        order_id = orders.place_order(session, place_command(owner.id, (product.id, 1))).id
        session.commit()
    with db.unit_of_work() as session:
        stock.reserve_stock(session, order_id)
        session.commit()
    with db.unit_of_work() as session:
        assert charging.begin_charge(session, order_id) is not None
        session.commit()
    # The provider captures; the worker dies before it can record the answer.
    provider.charge(
        order_id=order_id,
        amount=Money(2500, "usd"),
        payment_method="pm_card_visa",
        idempotency_key=charge_idempotency_key(order_id, 1),
    )
    with db.unit_of_work() as session:
        moves.cancel_order(session, order_id, orders.Viewer(owner.id, is_admin=False))
        work = find_stalled_work(session, stalled_for=-1)
        session.commit()
    assert (Step.CHARGE_PAYMENT, order_id) in {(w.step, w.order_id) for w in work}

    charging.charge_payment(db, provider, order_id)  # what the re-driven step does
    refunds.refund_payment(db, provider, order_id)
    with db.unit_of_work() as session:
        order = session.scalar(select(Order).where(Order.id == order_id))
        assert order is not None
        assert (order.status, order.payment_status) == ("cancelled", "refunded")
        session.commit()
    assert sum(r.amount.amount for r in provider.refunds(order.payment_intent_id)) == 2500
