from __future__ import annotations

import structlog
from celery import Task, shared_task

from orderflow.fulfilment.refunds import refund_payment as refund
from orderflow.payments import PaymentProviderUnavailable
from orderflow.steps import Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up

log = structlog.get_logger(__name__)


@shared_task(name=Step.REFUND_PAYMENT.value, **STEP_OPTIONS)
def refund_payment(self: Task, order_id: str, refund_id: str | None = None) -> None:
    with pipeline.continuing():
        try:
            refund(runtime.database(), runtime.payment_provider(), order_id, refund_id)
        except PaymentProviderUnavailable as error:
            # After the last retry the refund stays owed; the sweeper tries again later.
            retry_or_give_up(self, error, lambda: log.error("refund not made yet"))
