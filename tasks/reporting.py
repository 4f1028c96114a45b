"""How a finished step is reported: the task metrics and one ``task finished`` log line,
alike for a task that came from the broker and for a step continued in the worker
(``tasks.pipeline``), so dashboards and log searches count every step wherever it ran."""

from __future__ import annotations

import structlog

from orderflow import metrics

log = structlog.get_logger("workers.tasks")


def task_finished(name: str, outcome: str, seconds: float, *, continued: bool = False) -> None:
    metrics.TASK_LATENCY.labels(name, outcome).observe(seconds)
    metrics.TASKS.labels(name, outcome).inc()
    fields = {"continued": True} if continued else {}
    log.info(
        "task finished", task=name, outcome=outcome, duration_ms=round(seconds * 1000, 1), **fields
    )
