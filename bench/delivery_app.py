"""A throw-away Celery app for ``bench.delivery_guarantees``: one task that records when it
starts and when it finishes, with the three delivery settings taken from the environment."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER = os.environ["DELIVERY_BROKER_URL"]

app = Celery("delivery", broker=BROKER)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=os.environ.get("DELIVERY_ACKS_LATE") == "1",
    task_reject_on_worker_lost=os.environ.get("DELIVERY_REJECT_ON_LOST") == "1",
    worker_prefetch_multiplier=int(os.environ.get("DELIVERY_PREFETCH", "1")),
    broker_transport_options={"visibility_timeout": 8},
    worker_hijack_root_logger=False,
)
_store = redis.Redis.from_url(BROKER)


@app.task(name="delivery.step")
def step(number: int) -> None:
    _store.hincrby("delivery:started", str(number), 1)
    time.sleep(0.25)
    _store.hincrby("delivery:done", str(number), 1)
