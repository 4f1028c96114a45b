"""Outgoing webhooks' tasks on the ``webhooks`` queue. The deliveries themselves are sent
by the dispatcher each webhooks worker runs (``orderflow.webhooks.dispatcher``, started by
``workers.signals``), not by tasks.

``notify_disabled`` e-mails the admins that the system disabled an endpoint (once each per
disablement); ``reschedule_notices`` (beat, every ``ORDERFLOW_WEBHOOK_REDISPATCH_SECONDS``)
schedules it again for a disablement whose notices were lost."""

from __future__ import annotations

import structlog
from celery import Task, shared_task

from orderflow.email import EmailProviderUnavailable
from orderflow.webhooks import notices
from tasks import runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up

log = structlog.get_logger(__name__)


@shared_task(name="orderflow.webhooks.reschedule_notices", **STEP_OPTIONS)
def reschedule_notices(self: Task) -> int:
    """Schedule again the notices of a disablement not all sent (their message lost)."""
    settings = runtime.settings()
    with runtime.database().unit_of_work() as session:
        unnoticed = notices.due(session, settings.webhook_redispatch_seconds)
        session.commit()
    for endpoint_id, disablement in unnoticed:
        notify_disabled.apply_async(kwargs={"endpoint_id": endpoint_id, "disablement": disablement})
    return len(unnoticed)


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
        # After the last retry, reschedule_notices schedules them again later.
        retry_or_give_up(
            self,
            error,
            lambda: log.error("webhook disablement notice not sent", endpoint_id=endpoint_id),
        )
        return 0
