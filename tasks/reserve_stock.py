from __future__ import annotations

from celery import Task, shared_task

from orderflow.fulfilment.stock import reserve_stock as reserve
from orderflow.steps import Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS


@shared_task(name=Step.RESERVE_STOCK.value, **STEP_OPTIONS)
def reserve_stock(self: Task, order_id: str) -> None:
    with pipeline.continuing(), runtime.database().unit_of_work() as session:
        reserve(session, order_id)
        session.commit()
