"""Outgoing webhooks on the ``webhooks`` queue, served by a worker of its own.

``deliver`` sends one delivery (one POST, a short timeout); ``dispatch`` (beat, every
``ORDERFLOW_WEBHOOK_DISPATCH_INTERVAL_SECONDS``) hands due deliveries to ``deliver``:
retries whose time came, and any whose message was lost (Redis flushed, a worker killed).
``notify_disabled`` e-mails the admins that the system disabled an endpoint (once each per
disablement); ``dispatch`` schedules it again for a disablement whose notices were lost."""

from __future__ import annotations

import time
from functools import cache

import httpx
import structlog
from celery import Task, shared_task

from orderflow import metrics
from orderflow.email import EmailProviderUnavailable
from orderflow.settings import Settings
from orderflow.webhooks import delivery, notices
from tasks import runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up

log = structlog.get_logger(__name__)

DELIVER = "orderflow.webhooks.deliver"


@cache
def _client() -> httpx.Client:
    """One connection pool per worker process (built after the fork, on first use)."""
    return delivery.new_client(runtime.settings())


@shared_task(name=DELIVER, **STEP_OPTIONS)
def deliver(self: Task, delivery_id: int) -> str | None:
    """Send the delivery; after a success, go on with the next one due for the same
    endpoint (its subject's next first) in this task, without a trip through the broker,
    for at most ``CONTINUE_DELIVERIES`` deliveries or ``CONTINUE_SECONDS``; then hand the
    next one to another task. The endpoint's in-flight limit still holds: each goes on
    only with the slot its own attempt just freed, claimed in the transaction that records
    the attempt before it (one commit a delivery)."""
    settings = runtime.settings()
    deadline = time.monotonic() + CONTINUE_SECONDS
    with runtime.database().unit_of_work() as session:
        job = delivery.claim(session, delivery_id, settings)
        session.commit()
    status = None
    for sent in range(1, CONTINUE_DELIVERIES + 1):
        if job is None:
            return status  # not due, not its turn, endpoint off or busy, or done already
        go_on = sent < CONTINUE_DELIVERIES and time.monotonic() < deadline
        status, job, handed_on = _attempt(job, settings, claim_next=go_on)
        if handed_on is not None:
            deliver.apply_async(kwargs={"delivery_id": handed_on})
            return status
    return status


#: How far one ``deliver`` task goes on with the next deliveries of its endpoint.
CONTINUE_DELIVERIES = 100
CONTINUE_SECONDS = 10.0


def _attempt(
    job: delivery.Job, settings: Settings, *, claim_next: bool
) -> tuple[str, delivery.Job | None, int | None]:
    """One attempt of a claimed delivery: its outcome, and the next delivery of its endpoint,
    either claimed here to be sent by this task (``claim_next``, after a 2xx) or handed on
    to another task (its id)."""
    started = time.perf_counter()
    outcome = delivery.send(job, settings, _client())
    metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.perf_counter() - started)
    metrics.WEBHOOK_ATTEMPTS.labels(outcome.label).inc()
    next_job, handed_on = None, None
    with runtime.database().unit_of_work() as session:
        recorded = delivery.record(session, job, outcome, settings)
        if recorded.next_delivery_id is not None:
            if claim_next and recorded.status == "succeeded":
                next_job = delivery.claim(session, recorded.next_delivery_id, settings)
            else:
                handed_on = recorded.next_delivery_id
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
    return recorded.status, next_job, handed_on


@shared_task(name="orderflow.webhooks.dispatch", **STEP_OPTIONS)
def dispatch(self: Task) -> int:
    with runtime.database().unit_of_work() as session:
        due = delivery.dispatch_due(session, runtime.settings())
        unnoticed = notices.due(session, runtime.settings().webhook_redispatch_seconds)
        session.commit()
    for delivery_id in due:
        deliver.apply_async(kwargs={"delivery_id": delivery_id})
    for endpoint_id, disablement in unnoticed:
        notify_disabled.apply_async(kwargs={"endpoint_id": endpoint_id, "disablement": disablement})
    return len(due)


@shared_task(name=notices.NOTIFY_TASK, **STEP_OPTIONS)
def notify_disabled(self: Task, endpoint_id: str, disablement: int) -> int:
    settings = runtime.settings()
    try:
        return notices.send_notices(
            runtime.database(),
            runtime.email_sender(),
            endpoint_id,
            disablement,
            settings.webhook_disable_after_days,
        )
    except EmailProviderUnavailable as error:
        # After the last retry the dispatcher schedules the notices again later.
        retry_or_give_up(
            self,
            error,
            lambda: log.error("webhook disablement notice not sent", endpoint_id=endpoint_id),
        )
        return 0
