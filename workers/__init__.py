"""Celery application, queues and process launcher."""
