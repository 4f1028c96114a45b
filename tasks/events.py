"""Upkeep of the business events: retention, run by beat on the ``maintenance`` queue."""

from __future__ import annotations

import structlog
from celery import Task, shared_task

from orderflow.events import feed
from tasks import runtime
from tasks.retrying import STEP_OPTIONS

log = structlog.get_logger(__name__)

#: Events deleted per transaction: a few kilobytes each, so a batch holds a few megabytes of
#: row versions and its locks only briefly.
PURGE_BATCH = 2000
#: Batches per run; a run that fills them all queues itself again for the rest.
PURGE_BATCHES_PER_RUN = 50


@shared_task(name="orderflow.maintenance.purge_events", **STEP_OPTIONS)
def purge_events(self: Task) -> int:
    """Delete events (and their webhook deliveries) past ``ORDERFLOW_EVENT_RETENTION_DAYS``."""
    days = runtime.settings().event_retention_days
    purged = 0
    for _ in range(PURGE_BATCHES_PER_RUN):
        with runtime.database().unit_of_work() as session:
            deleted = feed.purge_older_than(session, days, PURGE_BATCH)
            session.commit()
        purged += deleted
        if deleted < PURGE_BATCH:
            break
    else:
        self.apply_async(countdown=1)
    if purged:
        log.info("purged events", events=purged, retention_days=days)
    return purged
