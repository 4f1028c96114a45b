from __future__ import annotations

from celery import Task, shared_task

from orderflow.fulfilment import charging
from orderflow.payments import PaymentProviderUnavailable
from orderflow.steps import Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up


@shared_task(name=Step.CHARGE_PAYMENT.value, **STEP_OPTIONS)
def charge_payment(self: Task, order_id: str) -> None:
    with pipeline.continuing():
        try:
            charging.charge_payment(runtime.database(), runtime.payment_provider(), order_id)
        except PaymentProviderUnavailable as error:
            retry_or_give_up(self, error, lambda: _park(order_id))


def _park(order_id: str) -> None:
    with runtime.database().unit_of_work() as session:
        charging.give_up_charge(session, order_id, charging.PROVIDER_UNAVAILABLE)
        session.commit()
