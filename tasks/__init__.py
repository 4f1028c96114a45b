"""Celery tasks: one module per pipeline step, each a few lines around one service call."""
