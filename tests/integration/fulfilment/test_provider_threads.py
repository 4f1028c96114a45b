"""The provider-bound steps on Celery's ``threads`` pool, 32 at once, as ``make run`` runs
them: the real Stripe and SendGrid adapters against stand-ins that take their time, every
charge and e-mail scheduled again while the first is still in flight. Nothing is charged or
e-mailed twice, every order ends right, and the calls really overlapped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from orderflow.db import Database
from orderflow.models import Order, Product, User
from orderflow.orders import service as orders
from orderflow.steps import EmailKind, Step, schedule
from tests.conftest import Pipelines, place_command, system_env
from tests.invariants import (
    assert_no_double_effects_at_providers,
    assert_promises_kept,
    wait_for_rest,
)
from tests.stubs import stub_provider_env
from tests.stubs.base import Latency
from tests.stubs.fixtures import SENDGRID_STUB_API_KEY, STRIPE_STUB_API_KEY
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub
from tests.system import SystemProcesses, wait_until

THREADS = 32
ORDERS = 64
STOCK = 100
#: Generous: on two cores shared with other work an order's steps can take seconds each.
SETTLE = 240.0


@pytest.fixture
def slow_stripe() -> Iterator[StripeStub]:
    with StripeStub(api_key=STRIPE_STUB_API_KEY, latency=Latency(0.3, 0.1)) as stub:
        yield stub


@pytest.fixture
def slow_sendgrid() -> Iterator[SendGridStub]:
    with SendGridStub(api_key=SENDGRID_STUB_API_KEY, latency=Latency(0.15, 0.05)) as stub:
        yield stub


@pytest.fixture
def threads_system(
    pipelines: Pipelines,
    clean_database: Database,
    slow_stripe: StripeStub,
    slow_sendgrid: SendGridStub,
    tmp_path: Path,
) -> Iterator[SystemProcesses]:
    pipelines.stop()  # one set of worker-side processes per test database at a time
    # The production timeout, not the tests' 2 s: on a loaded machine a 150 ms send can
    # take longer than 2 s to be answered, and SendGrid, having no idempotency key, would
    # then really send the retried e-mail twice (see orderflow/email/sendgrid_sender.py).
    env = system_env(
        pipelines.settings,
        **stub_provider_env(slow_stripe, slow_sendgrid),
        ORDERFLOW_PROVIDER_TIMEOUT_SECONDS="10",
    )
    system = SystemProcesses(env, tmp_path)
    try:
        system.start_workers(threads=THREADS)
        system.start_relay()
        system.start_beat()
        yield system
    finally:
        system.stop()


def _most_within(times: list[float], seconds: float) -> int:
    """The most of ``times`` that fall within any ``seconds``-long window."""
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def _statuses(database: Database, ids: list[str]) -> dict[str, str]:
    with database.unit_of_work() as session:
        rows = session.execute(select(Order.id, Order.status).where(Order.id.in_(ids))).all()
        session.commit()
    return {order_id: str(status) for order_id, status in rows}


def _count(database: Database, sql: str) -> int:
    with database.unit_of_work() as session:
        value = session.scalar(text(sql))
        session.commit()
    return int(value or 0)


def _schedule_again(database: Database, step: Step, ids: list[str], **kwargs: str) -> None:
    """What a redelivery or the sweeper does: the same step once more, through the outbox."""
    with database.unit_of_work() as session:
        for order_id in ids:
            schedule(session, step, order_id, **kwargs)
        session.commit()


def test_provider_steps_on_32_threads_keep_the_promises(
    threads_system: SystemProcesses,
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    slow_stripe: StripeStub,
    slow_sendgrid: SendGridStub,
) -> None:
    database = clean_database
    products = [make_product(price=1000 + 100 * n, stock=STOCK) for n in range(4)]
    owners = [make_user() for _ in range(4)]
    with database.unit_of_work() as session:
        ids = [
            orders.place_order(
                session,
                place_command(
                    owners[n % 4].id,
                    (products[n % 4].id, 1 + n % 2),
                    (products[(n + 1) % 4].id, 1),
                ),
            ).id
            for n in range(ORDERS)
        ]
        session.commit()

    # As soon as the stock is held, every charge is scheduled twice more: duplicates that
    # land on other threads while the first call is still waiting on Stripe.
    wait_until(
        lambda: (
            _count(database, "SELECT count(DISTINCT order_id) FROM stock_reservations") == ORDERS
        ),
        SETTLE,
    )
    _schedule_again(database, Step.CHARGE_PAYMENT, ids)
    _schedule_again(database, Step.CHARGE_PAYMENT, ids)
    # And every confirmation e-mail as soon as the orders are confirmed.
    wait_until(lambda: set(_statuses(database, ids).values()) == {"confirmed"}, SETTLE)
    _schedule_again(database, Step.SEND_EMAIL, ids, kind=EmailKind.CONFIRMATION.value)
    _schedule_again(database, Step.SEND_EMAIL, ids, kind=EmailKind.CONFIRMATION.value)

    wait_for_rest(database, SETTLE)
    initial = {product.id: STOCK for product in products}
    assert assert_promises_kept(database, initial, set(ids)) == {"confirmed": ORDERS}
    assert_no_double_effects_at_providers(database, slow_stripe, slow_sendgrid)
    assert len(slow_stripe.succeeded_charges()) == ORDERS
    assert sorted(slow_sendgrid.count_by_key().values()) == [1] * ORDERS
    assert _count(database, "SELECT count(DISTINCT number) FROM invoices") == ORDERS
    # The calls overlapped: each waits at least 0.2 s at Stripe, so one thread at a time
    # never starts more than two within 0.2 s. (How many more depends on how fast the
    # prefork worker reserves: on a loaded machine the charges trickle in.)
    starts = [r.at for r in slow_stripe.requests if r.path == "/v1/payment_intents"]
    assert _most_within(starts, 0.2) >= 4
    log = (threads_system.log_dir / "worker-io.log").read_text(errors="replace")
    assert "database pool sized for the threads" in log
