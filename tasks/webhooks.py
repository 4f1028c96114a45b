"""Outgoing webhooks on the ``webhooks`` queue, served by a worker of its own.

``deliver`` sends one delivery (one POST, a short timeout); ``dispatch`` (beat, every
``ORDERFLOW_WEBHOOK_DISPATCH_INTERVAL_SECONDS``) hands due deliveries to ``deliver``:
retries whose time came, and any whose message was lost (Redis flushed, a worker killed)."""

from __future__ import annotations

import time
from functools import cache

import httpx
import structlog
from celery import Task, shared_task

from orderflow import metrics
from orderflow.webhooks import delivery
from tasks import runtime
from tasks.retrying import STEP_OPTIONS

log = structlog.get_logger(__name__)

DELIVER = "orderflow.webhooks.deliver"


@cache
def _client() -> httpx.Client:
    """One connection pool per worker process (built after the fork, on first use)."""
    return delivery.new_client(runtime.settings())


@shared_task(name=DELIVER, **STEP_OPTIONS)
def deliver(self: Task, delivery_id: int) -> str | None:
    settings = runtime.settings()
    with runtime.database().unit_of_work() as session:
        job = delivery.claim(session, delivery_id, settings)
        session.commit()
    if job is None:
        return None  # not due, not its turn, endpoint off or busy, or done already
    started = time.perf_counter()
    outcome = delivery.send(job, settings, _client())
    metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.perf_counter() - started)
    metrics.WEBHOOK_ATTEMPTS.labels(outcome.label).inc()
    with runtime.database().unit_of_work() as session:
        recorded = delivery.record(session, job, outcome, settings)
        session.commit()
    metrics.WEBHOOK_DELIVERIES.labels(recorded.status).inc()
    if recorded.endpoint_disabled:
        metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
        log.warning("webhook endpoint disabled", endpoint_id=job.endpoint_id, url=job.url)
    log.info(
        "webhook attempt",
        delivery_id=job.delivery_id,
        event_id=job.event_id,
        endpoint_id=job.endpoint_id,
        attempt=job.attempt,
        status_code=outcome.status_code,
        outcome=recorded.status,
    )
    if recorded.next_delivery_id is not None:
        deliver.apply_async(kwargs={"delivery_id": recorded.next_delivery_id})
    return recorded.status


@shared_task(name="orderflow.webhooks.dispatch", **STEP_OPTIONS)
def dispatch(self: Task) -> int:
    with runtime.database().unit_of_work() as session:
        due = delivery.dispatch_due(session, runtime.settings())
        session.commit()
    for delivery_id in due:
        deliver.apply_async(kwargs={"delivery_id": delivery_id})
    return len(due)
