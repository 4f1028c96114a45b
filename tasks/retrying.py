"""The retry policy of every step: database hiccups and provider outages are retried with
exponential backoff and jitter, a bounded number of times."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy.exc import InterfaceError, OperationalError

from tasks import runtime

#: A restarted or unreachable PostgreSQL; the step is safe to run again from the start.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)

#: Options every step task is declared with.
STEP_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": TRANSIENT_DATABASE_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 30,
}


def backoff_seconds(retries: int, hint: float | None = None) -> float:
    """Exponential from the configured base, capped at a minute, with full jitter."""
    base = runtime.settings().provider_retry_base_seconds
    delay = min(60.0, base * 2**retries) * random.uniform(0.5, 1.5)
    return max(delay, hint or 0.0)


def retry_or_give_up(task: Task, error: Exception, give_up: Callable[[], None]) -> None:
    """Retry the task later, or call ``give_up`` once the retries are spent."""
    retries = task.request.retries
    if retries >= runtime.settings().provider_max_retries:
        give_up()
        return
    raise task.retry(
        exc=error, countdown=backoff_seconds(retries, getattr(error, "retry_after", None))
    )
