"""Periodic upkeep, run by beat on the ``maintenance`` queue. Each task logs at info only
when it did something; an idle round is a debug line (``tasks.reporting.ROUTINE_TASKS``)."""

from __future__ import annotations

import structlog
from celery import Task, shared_task

from orderflow import idempotency, outbox
from orderflow.fulfilment.sweeper import redrive_stalled
from tasks import runtime
from tasks.retrying import STEP_OPTIONS

log = structlog.get_logger(__name__)


@shared_task(name="orderflow.maintenance.sweep", **STEP_OPTIONS)
def sweep(self: Task) -> int:
    with runtime.database().unit_of_work() as session:
        work = redrive_stalled(session, runtime.settings().sweep_stall_seconds)
        session.commit()
    if work:
        log.info("re-drove stalled orders", count=len(work), steps=sorted({w.step for w in work}))
    else:
        log.debug("nothing stalled")
    return len(work)


@shared_task(name="orderflow.maintenance.purge", **STEP_OPTIONS)
def purge(self: Task) -> None:
    """Forget idempotency keys past their retention and outbox messages long dispatched."""
    with runtime.database().unit_of_work() as session:
        keys = idempotency.purge_expired(session, runtime.settings().idempotency_key_ttl_hours)
        messages = outbox.purge_dispatched(session, older_than_hours=24)
        session.commit()
    report = log.info if keys or messages else log.debug
    report("purged", idempotency_keys=keys, outbox_messages=messages)
