"""A worker going on with an order's next steps itself (``tasks.pipeline``): what it takes off
the relay, that the order still ends the same, and that a step failing there travels on
through its queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from orderflow import outbox
from orderflow.db import Database
from orderflow.models import OutboxMessage, Product
from orderflow.steps import EmailKind, Step, schedule
from tests.conftest import Pipelines, order_body, wait_for_status
from tests.stubs import stub_provider_env
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub
from tests.system import SystemProcesses, wait_until

FOLLOW_UPS = [Step.CHARGE_PAYMENT.value, Step.GENERATE_INVOICE.value, Step.SEND_EMAIL.value]


def _log_events(system: SystemProcesses, order_id: str) -> list[dict[str, object]]:
    lines = (system.log_dir / "worker.log").read_text(errors="replace").splitlines()
    events = []
    for line in lines:
        if order_id in line and line.startswith("{"):
            events.append(json.loads(line))
    return events


def _continued(system: SystemProcesses, order_id: str) -> list[object]:
    events = _log_events(system, order_id)
    return [e["task"] for e in events if e["event"] == "task finished" and e.get("continued")]


def _finished(system: SystemProcesses, order_id: str) -> list[object]:
    """The tasks from the broker that finished for the order."""
    events = _log_events(system, order_id)
    return [e["task"] for e in events if e["event"] == "task finished" and not e.get("continued")]


def _confirmed_and_emailed(customer: httpx.Client, product: Product) -> str:
    answer = customer.post("/orders", json=order_body((product.id, 1)))
    assert answer.status_code == 201, answer.text
    order_id = str(answer.json()["id"])
    order = wait_for_status(customer, order_id, {"confirmed", "failed", "cancelled"})
    assert order["status"] == "confirmed"
    return order_id


# --- the outbox side, in one process ---------------------------------------------------------


def test_taken_over_messages_are_written_dispatched_and_reported_after_commit(
    clean_database: Database, make_product: Callable[..., Product]
) -> None:
    with outbox.taking_over({Step.CHARGE_PAYMENT.value}) as takeover:
        with clean_database.unit_of_work() as session:
            schedule(session, Step.CHARGE_PAYMENT, "ord_a")
            schedule(session, Step.SEND_EMAIL, "ord_a", kind=EmailKind.CONFIRMATION.value)
            assert takeover.committed == []  # not before the commit
            session.commit()
        assert takeover.committed == [(Step.CHARGE_PAYMENT.value, {"order_id": "ord_a"})]
    with clean_database.unit_of_work() as session:
        rows = {m.topic: m for m in session.scalars(select(OutboxMessage))}
        session.commit()
    assert rows[Step.CHARGE_PAYMENT.value].dispatched_at is not None  # the relay leaves it
    assert rows[Step.SEND_EMAIL.value].dispatched_at is None  # the relay publishes it


def test_nothing_is_taken_over_from_a_transaction_that_rolled_back(
    clean_database: Database,
) -> None:
    def failing_step() -> None:
        with clean_database.unit_of_work() as session:
            schedule(session, Step.CHARGE_PAYMENT, "ord_b")
            session.flush()
            raise RuntimeError("the step failed")

    with outbox.taking_over({Step.CHARGE_PAYMENT.value}) as takeover, pytest.raises(RuntimeError):
        failing_step()
    assert takeover.committed == []
    with clean_database.unit_of_work() as session:
        assert session.scalars(select(OutboxMessage)).first() is None
        session.commit()


def test_outside_a_takeover_every_message_goes_to_the_relay(clean_database: Database) -> None:
    with clean_database.unit_of_work() as session:
        schedule(session, Step.CHARGE_PAYMENT, "ord_c")
        session.commit()
    with clean_database.unit_of_work() as session:
        assert session.scalars(select(OutboxMessage)).one().dispatched_at is None
        session.commit()


def _notified(database: Database, write: Callable[[Session], None]) -> bool:
    """Whether committing ``write`` wakes a relay LISTENing on the outbox channel."""
    raw = database.engine.raw_connection()
    try:
        listener: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        listener.autocommit = True
        listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
        with database.unit_of_work() as session:
            write(session)
            session.commit()
        return any(True for _ in listener.notifies(timeout=0.5, stop_after=1))
    finally:
        raw.invalidate()


def test_a_message_for_the_relay_wakes_it_and_a_taken_one_does_not(
    clean_database: Database,
) -> None:
    def for_the_relay(session: Session) -> None:
        schedule(session, Step.CHARGE_PAYMENT, "ord_d")

    assert _notified(clean_database, for_the_relay)
    with outbox.taking_over({Step.CHARGE_PAYMENT.value}):
        assert not _notified(clean_database, for_the_relay)


# --- real workers ------------------------------------------------------------------------------


@pytest.mark.workers
def test_a_worker_runs_the_next_steps_of_an_order_itself(
    pipelines: Pipelines, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    """A worker on every queue (``make run`` splits them over two pools, so there each step
    is handed to the other pool's queue at once instead)."""
    system = pipelines.use("local, one worker", {}, one_worker=True)
    order_id = _confirmed_and_emailed(customer, make_product(stock=5))
    wait_until(lambda: _finished(system, order_id), 30)  # with all it went on with
    # Each step the worker went on with is reported when done, so the innermost first.
    assert _continued(system, order_id) == list(reversed(FOLLOW_UPS))
    assert _finished(system, order_id) == [Step.RESERVE_STOCK.value]  # one from the broker


@pytest.mark.workers
def test_with_continuation_off_every_step_travels_through_its_queue(
    pipelines: Pipelines, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    system = pipelines.use(
        "queues only", {"ORDERFLOW_CONTINUE_STEPS_IN_PROCESS": "false"}, one_worker=True
    )
    order_id = _confirmed_and_emailed(customer, make_product(stock=5))
    every_step = sorted([Step.RESERVE_STOCK.value, *FOLLOW_UPS])
    wait_until(lambda: sorted(map(str, _finished(system, order_id))) == every_step, 30)
    assert _continued(system, order_id) == []


@pytest.mark.workers
def test_a_step_failing_in_the_worker_is_retried_through_its_queue(
    pipelines: Pipelines,
    stripe_stub_shared: StripeStub,
    sendgrid_stub_shared: SendGridStub,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    env = stub_provider_env(stripe_stub_shared, sendgrid_stub_shared)
    system = pipelines.use("stubs, one worker", env, one_worker=True)
    stripe_stub_shared.fail_next(1, 500, path="/v1/payment_intents")
    order_id = _confirmed_and_emailed(customer, make_product(stock=5))
    wait_until(lambda: Step.CHARGE_PAYMENT.value in _finished(system, order_id), 30)
    events = _log_events(system, order_id)
    handed = [e["step"] for e in events if str(e["event"]).startswith("step failed here")]
    assert handed == [Step.CHARGE_PAYMENT.value]  # then retried from the broker, as waited for
    assert len(stripe_stub_shared.succeeded_charges(order_id)) == 1
