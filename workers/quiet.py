"""Celery's own lines about periodic upkeep at debug: beat's "Sending due task", the
worker's "received" and "succeeded" for the tasks of ``tasks.reporting.ROUTINE_TASKS``.
Without this an idle system writes four INFO lines every sweep (10 s); the tasks themselves
say at info when they did something. Failures and retries keep their level."""

from __future__ import annotations

import logging
from typing import Any

from tasks.reporting import is_routine

#: Celery's loggers and how each names the task a record is about.
_BEAT = "celery.beat"
_RECEIVED = "celery.worker.strategy"
_TRACE = "celery.app.trace"
_SENDING_DUE_TASK = "Scheduler: Sending due task %s (%s)"
_SUCCEEDED = " succeeded in "


class RoutineAtDebug(logging.Filter):
    """Lowers the matching records to DEBUG, and drops them unless DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _about_routine_task(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _about_routine_task(record: logging.LogRecord) -> bool:
    if record.name == _BEAT:
        args: Any = record.args
        return (
            record.msg == _SENDING_DUE_TASK
            and isinstance(args, tuple)
            and len(args) == 2
            and is_routine(str(args[1]))
        )
    data = getattr(record, "data", None)  # Celery passes its format context as ``extra``
    if not isinstance(data, dict) or not is_routine(str(data.get("name", ""))):
        return False
    return record.name == _RECEIVED or (record.name == _TRACE and _SUCCEEDED in str(record.msg))


def quiet_routine_tasks() -> None:
    """Install the filter on Celery's loggers; idempotent. Called when logging is set up."""
    for name in (_BEAT, _RECEIVED, _TRACE):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RoutineAtDebug) for f in logger.filters):
            logger.addFilter(RoutineAtDebug())
