from __future__ import annotations

from celery import Task, shared_task

from orderflow.fulfilment.crediting import issue_credit_note as issue
from orderflow.steps import Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS


@shared_task(name=Step.ISSUE_CREDIT_NOTE.value, **STEP_OPTIONS)
def issue_credit_note(self: Task, order_id: str, refund_id: str) -> None:
    with pipeline.continuing(), runtime.database().unit_of_work() as session:
        issue(session, order_id, refund_id)
        session.commit()
