"""Periodic upkeep, run by beat on the ``maintenance`` queue. Each task logs at info only
when it did something; an idle round is a debug line (``tasks.reporting.ROUTINE_TASKS``)."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from celery import Task, shared_task
from sqlalchemy.orm import Session

from orderflow import idempotency, outbox
from orderflow.carts import service as carts
from orderflow.fulfilment import tracking
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


@shared_task(name="orderflow.maintenance.local_carrier", **STEP_OPTIONS)
def local_carrier(self: Task) -> int:
    """The ``local`` shipping provider's simulated carrier reports on the parcels it carries
    (read back and applied as after a tracking webhook); nothing with another provider."""
    if runtime.settings().shipping_provider != "local":
        return 0
    new = tracking.poll_carrier(runtime.database(), runtime.shipping_provider())
    (log.info if new else log.debug)("simulated carrier reported", updates=new)
    return new


@shared_task(name="orderflow.maintenance.purge", **STEP_OPTIONS)
def purge(self: Task) -> None:
    """Forget idempotency keys past their retention and outbox messages long dispatched."""
    with runtime.database().unit_of_work() as session:
        keys = idempotency.purge_expired(session, runtime.settings().idempotency_key_ttl_hours)
        messages = outbox.purge_dispatched(session, older_than_hours=24)
        session.commit()
    report = log.info if keys or messages else log.debug
    report("purged", idempotency_keys=keys, outbox_messages=messages)


#: Carts a batch (one short transaction) and batches of each kind a run does at most; a
#: larger backlog is left to the next run, ten minutes later.
CART_BATCH = carts.CART_BATCH
CART_BATCHES_PER_RUN = 20


@shared_task(name="orderflow.maintenance.carts", **STEP_OPTIONS)
def expire_carts(self: Task) -> dict[str, int]:
    """Open carts past their expiry become ``expired``; carts completed or expired over
    ``ORDERFLOW_CART_TTL_HOURS`` ago are deleted. Batch by batch, each its own transaction
    that skips the carts a change or a checkout holds, so none waits on a customer."""
    ttl_hours = runtime.settings().cart_ttl_hours
    expired = _in_batches(carts.expire_carts)
    purged = _in_batches(lambda session, limit: carts.purge_carts(session, ttl_hours, limit))
    if expired or purged:
        log.info("carts expired and purged", expired=expired, purged=purged)
    return {"expired": expired, "purged": purged}


def _in_batches(batch: Callable[[Session, int], int]) -> int:
    done = 0
    for _ in range(CART_BATCHES_PER_RUN):
        with runtime.database().unit_of_work() as session:
            count = batch(session, CART_BATCH)
            session.commit()
        done += count
        if count < CART_BATCH:
            break
    return done
