"""Worker signals: per-process set-up after the fork, and the order id on every log line."""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import setup_logging, task_postrun, task_prerun, worker_process_init

from orderflow.logging import configure_logging
from orderflow.settings import get_settings
from tasks import runtime


@setup_logging.connect
def _logging(**_: Any) -> None:
    configure_logging(get_settings())


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    runtime.reset()


@task_prerun.connect
def _bind_order(task_id: str, task: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id)
    if kwargs and "order_id" in kwargs:
        structlog.contextvars.bind_contextvars(order_id=kwargs["order_id"])


@task_postrun.connect
def _unbind(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
