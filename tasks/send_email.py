from __future__ import annotations

import structlog
from celery import Task, shared_task

from orderflow.email import EmailProviderUnavailable
from orderflow.fulfilment.notifications import send_email as send
from orderflow.steps import EmailKind, Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up

log = structlog.get_logger(__name__)


@shared_task(name=Step.SEND_EMAIL.value, **STEP_OPTIONS)
def send_email(
    self: Task,
    order_id: str,
    kind: str,
    refund_id: str | None = None,
    change_id: str | None = None,
) -> None:
    """The order's e-mail of ``kind``; a refund's (``refund_id``) or a change's
    (``change_id``) for the kinds sent once per refund or change."""
    with pipeline.continuing():
        try:
            send(
                runtime.database(),
                runtime.email_sender(),
                order_id,
                EmailKind(kind),
                refund_id or change_id,
            )
        except EmailProviderUnavailable as error:
            # After the last retry the claim stays unsent; the sweeper tries again later.
            retry_or_give_up(self, error, lambda: log.error("email not sent", kind=kind))
