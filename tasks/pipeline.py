"""Going on with an order's pipeline in the worker that ran the step before.

A step task runs its service inside ``continuing()``. The steps that service schedules, when
this worker serves their queues, are written to the outbox as already dispatched (see
``orderflow.outbox.Takeover``) and run here as soon as the step's transaction commits, each
as a call of its own task: its own transactions, its own follow-ups. An order's happy path
then takes one broker round trip instead of four, and no relay hop between steps.

The steps of the happy path that another worker serves (the charge and the e-mail on the
threads worker, the invoice on prefork: ``HANDED_OVER``) are taken over too and published
to their queue by this worker as soon as the transaction commits, without waiting for the
relay: one hop less, and the relay's work saved.

A step run here that fails is published to its queue, as the relay would have done, and is
retried from there like any other. If this process dies first, the sweeper finds the order
stalled and schedules the step again: the same recovery as for a message the broker lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from celery import current_app

from orderflow import outbox
from orderflow.steps import Step
from tasks import runtime
from tasks.reporting import task_finished

log = structlog.get_logger(__name__)


#: Steps a worker publishes itself when it does not serve them. Each is one the sweeper
#: schedules again for an order stalled before it (``fulfilment.sweeper``), so a worker that
#: dies between the commit and the publish delays the order, never loses it.
HANDED_OVER = frozenset(
    step.value for step in (Step.CHARGE_PAYMENT, Step.GENERATE_INVOICE, Step.SEND_EMAIL)
)


@contextmanager
def continuing() -> Iterator[None]:
    """Run the block (a step's service call), then the steps it scheduled: published first
    for the other workers, then run here those this worker serves."""
    served = runtime.steps_served_here()
    if not served:
        yield
        return
    with outbox.taking_over(served | HANDED_OVER) as takeover:
        try:
            yield
        except BaseException:
            # Whatever the step committed before it failed still has to happen.
            for topic, payload in takeover.committed:
                hand_over(topic, payload)
            raise
    mine = [(topic, payload) for topic, payload in takeover.committed if topic in served]
    for topic, payload in takeover.committed:
        if topic not in served:
            hand_over(topic, payload)
    for topic, payload in mine:
        run_here(topic, payload)


def run_here(topic: str, payload: dict[str, Any]) -> None:
    log.debug("step continued in this worker", step=topic)  # "task finished" says it at info
    kwargs, _ = outbox.task_call(payload)
    started, outcome = time.perf_counter(), "success"
    try:
        current_app.tasks[topic](**kwargs)
    except Exception as error:
        outcome = "failure"
        log.warning("step failed here; handing it to its queue", step=topic, error=repr(error))
        hand_over(topic, payload)
    finally:
        task_finished(topic, outcome, time.perf_counter() - started, continued=True)


def hand_over(topic: str, payload: dict[str, Any]) -> None:
    """Publish the step as the relay would have; if even that fails, the sweeper will."""
    kwargs, headers = outbox.task_call(payload)
    try:
        current_app.send_task(topic, kwargs=kwargs, headers=headers or None)
    except Exception as error:
        log.error("step left to the sweeper", step=topic, error=repr(error))
