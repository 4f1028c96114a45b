from __future__ import annotations

from celery import Task, shared_task

from orderflow.fulfilment.invoicing import generate_invoice as issue
from orderflow.steps import Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS


@shared_task(name=Step.GENERATE_INVOICE.value, **STEP_OPTIONS)
def generate_invoice(self: Task, order_id: str) -> None:
    with pipeline.continuing(), runtime.database().unit_of_work() as session:
        issue(session, order_id)
        session.commit()
