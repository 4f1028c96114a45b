"""The Celery application object: ``celery -A workers.app worker``."""

from __future__ import annotations

from celery import Celery

app = Celery("orderflow")
app.config_from_object("celeryconfig")
app.autodiscover_tasks(["tasks"], related_name=None, force=True)
