"""The order repository against real PostgreSQL: every way an order and its payments are
written, read and locked."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.errors import NotFound
from orderflow.event_types import OrderEventType
from orderflow.models import OrderEvent, OutboxMessage, Product, User
from orderflow.money import Money
from orderflow.orders import service as orders
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.statuses import (
    OrderStatus,
    PaymentKind,
    PaymentRecordStatus,
    PaymentStatus,
    RefundStatus,
)
from tests.conftest import place_command


@pytest.fixture
def order_id(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> str:
    product = make_product(price=1500, stock=5)
    with clean_database.unit_of_work() as session:
        placed = orders.place_order(session, place_command(make_user().id, (product.id, 2)))
        session.commit()
    return placed.id


def test_placing_writes_the_order_its_lines_its_event_and_its_first_step(
    clean_database: Database, order_id: str
) -> None:
    with clean_database.unit_of_work() as session:
        order = OrderRepository(session).lock_for_update(order_id)
        assert (order.status, order.payment_status) == (OrderStatus.PENDING, PaymentStatus.UNPAID)
        assert isinstance(order.status, OrderStatus)
        assert [(line.quantity, line.subtotal_amount) for line in order.lines] == [(2, 3000)]
        events = session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id))
        assert [event.type for event in events] == [OrderEventType.ORDER_PLACED]
        topics = session.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.order_id == order_id)
        )
        assert list(topics) == ["orderflow.reserve_stock"]


def test_lock_for_update_of_an_unknown_order_is_not_found(clean_database: Database) -> None:
    with clean_database.unit_of_work() as session, pytest.raises(NotFound):
        OrderRepository(session).lock_for_update("ord_nope")


def test_move_status_is_a_compare_and_set(clean_database: Database, order_id: str) -> None:
    """Two transactions read the order pending; the one that writes second loses."""
    with clean_database.unit_of_work() as first, clean_database.unit_of_work() as second:
        mine, theirs = OrderRepository(first), OrderRepository(second)
        stale = theirs.get(order_id)
        assert stale is not None
        assert mine.move_status(mine.lock_for_update(order_id), OrderStatus.CANCELLED)
        first.commit()
        assert not theirs.move_status(stale, OrderStatus.CONFIRMED)
        assert stale.status == OrderStatus.PENDING  # the loser's object is left as it was
    with clean_database.unit_of_work() as session:
        assert OrderRepository(session).lock_for_update(order_id).status == OrderStatus.CANCELLED


def test_update_writes_columns_and_touch_only_stamps(
    clean_database: Database, order_id: str
) -> None:
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        order = repository.lock_for_update(order_id)
        before = order.updated_at
        with pytest.raises(ValueError, match="touch"):
            repository.update(order)
        repository.update(order, failure_reason="parked")
        assert (order.failure_reason, order.updated_at >= before) == ("parked", True)
        repository.touch(order)
        session.commit()
    with clean_database.unit_of_work() as session:
        assert OrderRepository(session).lock_for_update(order_id).failure_reason == "parked"


def test_payments_round_trip_as_their_enums(clean_database: Database, order_id: str) -> None:
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        repository.lock_for_update(order_id)
        repository.start_charge(order_id, Money(3000, "usd"), attempt=1)
        charge = repository.charge_of(order_id, lock=True)
        assert charge is not None
        assert (charge.kind, charge.status) == (PaymentKind.CHARGE, PaymentRecordStatus.PROCESSING)
        repository.update_payment(charge, status=PaymentRecordStatus.SUCCEEDED, provider_id="pi_1")
        refund = repository.add_refund(order_id, Money(1000, "usd"), "damaged")
        assert refund.status is RefundStatus.PENDING
        assert repository.refunds_of(order_id) == [refund]
        session.commit()
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        assert repository.order_id_for_intent("pi_1") == order_id
        assert repository.order_id_for_intent("pi_other") is None
        charge = repository.charge_of(order_id)
        assert charge is not None
        assert charge.status is PaymentRecordStatus.SUCCEEDED


def test_events_are_listed_oldest_first(clean_database: Database, order_id: str) -> None:
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        repository.lock_for_update(order_id)
        for type_ in (OrderEventType.STOCK_RESERVED, OrderEventType.PAYMENT_SUCCEEDED):
            repository.record_event(order_id, type_, SYSTEM_ACTOR, {"n": 1})
        session.commit()
    with clean_database.unit_of_work() as session:
        page = OrderRepository(session).events_page(order_id, limit=10, offset=0)
    assert [event.type for event in page.items] == [
        OrderEventType.ORDER_PLACED,
        OrderEventType.STOCK_RESERVED,
        OrderEventType.PAYMENT_SUCCEEDED,
    ]


def test_the_lock_holds_off_a_second_writer_until_commit(
    clean_database: Database, order_id: str
) -> None:
    """``lock_for_update`` is a row lock: a second locker waits for the first to end."""
    order_seen: list[str] = []
    locked = threading.Event()

    def second() -> None:
        locked.wait(5)
        with clean_database.unit_of_work() as session:
            order = OrderRepository(session).lock_for_update(order_id)
            order_seen.append(order.failure_reason or "")

    thread = threading.Thread(target=second)
    thread.start()
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        order = repository.lock_for_update(order_id)
        locked.set()
        thread.join(0.5)
        assert thread.is_alive()  # waiting on the lock
        repository.update(order, failure_reason="first")
        session.commit()
    thread.join(5)
    assert order_seen == ["first"]


def test_stuck_counts_and_parked(clean_database: Database, order_id: str) -> None:
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        repository.update(repository.lock_for_update(order_id), failure_reason="provider_down")
        session.commit()
    with clean_database.unit_of_work() as session:
        repository = OrderRepository(session)
        assert repository.parked(["provider_down"]) == [(order_id, "provider_down")]
        counts = repository.stuck_counts(-60, "awaiting", "stalled")
        assert counts == {"provider_down": 1}
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
