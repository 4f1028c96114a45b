"""How a finished step is reported: the task metrics and one ``task finished`` log line,
alike for a task that came from the broker and for a step continued in the worker
(``tasks.pipeline``), so dashboards and log searches count every step wherever it ran.

Periodic upkeep (``ROUTINE_TASKS``: the sweeper every few seconds, the hourly purge) is
reported at debug when it succeeds: those tasks say at info themselves when they did
something, so an idle system writes no line every 10 s (``workers.quiet`` does the same for
Celery's own lines about them)."""

from __future__ import annotations

import structlog

from orderflow import metrics

log = structlog.get_logger("workers.tasks")

#: Task names (a prefix) of the periodic upkeep beat schedules (``tasks.maintenance``).
ROUTINE_TASKS = "orderflow.maintenance."


def is_routine(task_name: str) -> bool:
    return task_name.startswith(ROUTINE_TASKS)


def task_finished(name: str, outcome: str, seconds: float, *, continued: bool = False) -> None:
    metrics.TASK_LATENCY.labels(name, outcome).observe(seconds)
    metrics.TASKS.labels(name, outcome).inc()
    fields = {"continued": True} if continued else {}
    report = log.debug if is_routine(name) and outcome == "success" else log.info
    report(
        "task finished", task=name, outcome=outcome, duration_ms=round(seconds * 1000, 1), **fields
    )
