"""Which steps a worker goes on with itself: those routed to the queues it consumes."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import celeryconfig
from orderflow.steps import Step
from tasks import runtime
from workers import signals


@pytest.fixture(autouse=True)
def _forget_served_steps() -> Iterator[None]:
    yield
    runtime.serve_steps_here(frozenset())


def _worker_on(*queues: str) -> SimpleNamespace:
    """What the ``worker_init`` signal hands over: the worker, its app, the queues of ``-Q``."""
    consumed = {queue: object() for queue in queues}
    app = SimpleNamespace(
        amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consumed)),
        conf=SimpleNamespace(task_routes=celeryconfig.task_routes),
    )
    return SimpleNamespace(app=app)


def test_a_worker_on_every_queue_goes_on_with_every_step() -> None:
    signals._serve_steps_here(sender=_worker_on(*celeryconfig.STEP_QUEUES))
    assert runtime.steps_served_here() == {step.value for step in Step}


def test_a_payments_worker_goes_on_only_with_payment_steps() -> None:
    signals._serve_steps_here(sender=_worker_on("charge_payment"))
    assert runtime.steps_served_here() == {
        Step.CHARGE_PAYMENT.value,
        Step.REFUND_PAYMENT.value,
    }


def test_turned_off_it_goes_on_with_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERFLOW_CONTINUE_STEPS_IN_PROCESS", "false")
    signals.get_settings.cache_clear()
    try:
        signals._serve_steps_here(sender=_worker_on(*celeryconfig.STEP_QUEUES))
    finally:
        signals.get_settings.cache_clear()
    assert runtime.steps_served_here() == frozenset()
