"""The SMS step: shipped and delivered notices, on a queue of their own (``send_sms``).

A queue of its own, not the e-mail one: texts go to another provider, and a slow or failing
Twilio (each attempt may wait out the provider timeout, plus a look-up on retries) must not
hold the workers that send confirmations and every other e-mail, nor the other way round;
it also scales on its own, like every step (``celeryconfig.STEP_QUEUES``)."""

from __future__ import annotations

import structlog
from celery import Task, shared_task

from orderflow.fulfilment.sms_notices import send_sms as send
from orderflow.sms import SmsProviderUnavailable
from orderflow.steps import SmsKind, Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up

log = structlog.get_logger(__name__)


@shared_task(name=Step.SEND_SMS.value, **STEP_OPTIONS)
def send_sms(self: Task, order_id: str, kind: str) -> None:
    with pipeline.continuing():
        try:
            send(runtime.database(), runtime.sms_sender(), order_id, SmsKind(kind))
        except SmsProviderUnavailable as error:
            # After the last retry the text stays owed; the sweeper tries again later.
            retry_or_give_up(self, error, lambda: log.error("sms not sent", kind=kind))
