"""The Celery application object: ``celery -A workers.app worker``."""

from __future__ import annotations

from workers.metrics import prepare_multiprocess_dir

# Before anything builds a metric: the worker's pool processes record into files.
prepare_multiprocess_dir()

from celery import Celery  # noqa: E402

from orderflow.startup import exit_on_config_error, load_settings  # noqa: E402

# A bad setting is one line and exit status 2, before Celery reads celeryconfig.
exit_on_config_error(load_settings, program="orderflow worker")

TASK_MODULES = [
    "tasks.reserve_stock",
    "tasks.charge_payment",
    "tasks.generate_invoice",
    "tasks.send_email",
    "tasks.send_sms",
    "tasks.refund_payment",
    "tasks.labels",
    "tasks.maintenance",
    "tasks.events",
    "tasks.webhooks",
]

app = Celery("orderflow", include=TASK_MODULES)
app.config_from_object("celeryconfig")

import workers.signals  # noqa: E402,F401  (connects the worker signals)
