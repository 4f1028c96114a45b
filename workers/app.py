"""The Celery application object: ``celery -A workers.app worker``."""

from __future__ import annotations

from celery import Celery

TASK_MODULES = [
    "tasks.reserve_stock",
    "tasks.charge_payment",
    "tasks.generate_invoice",
    "tasks.send_email",
    "tasks.refund_payment",
    "tasks.maintenance",
]

app = Celery("orderflow", include=TASK_MODULES)
app.config_from_object("celeryconfig")

import workers.signals  # noqa: E402,F401  (connects the worker signals)
