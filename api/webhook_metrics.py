"""Scrape-time gauges of the outgoing webhooks: backlog and oldest pending age per endpoint,
endpoints by status (``disabled`` ones need an operator)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

log = logging.getLogger(__name__)

_BACKLOG = text(
    """
    SELECT endpoint_id, count(*) AS pending,
           extract(epoch FROM now() - min(created_at)) AS oldest
    FROM webhook_deliveries WHERE status IN ('pending', 'failed') GROUP BY endpoint_id
    """
)
_ENDPOINTS = text("SELECT status, count(*) FROM webhook_endpoints GROUP BY status")


class WebhookCollector(Collector):
    def __init__(self, app_state: Any) -> None:
        self.state = app_state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        database = getattr(self.state, "database", None)
        if database is None:
            return
        try:
            with database.session() as session:
                try:
                    session.execute(text("SET LOCAL statement_timeout = 2000"))
                    backlog = session.execute(_BACKLOG).all()
                    endpoints = session.execute(_ENDPOINTS).all()
                finally:
                    session.rollback()
        except Exception as error:  # a scrape must not fail
            log.warning("metrics: webhook gauges unavailable: %s", type(error).__name__)
            return
        pending = GaugeMetricFamily(
            "orderflow_webhook_backlog",
            "Webhook deliveries not yet answered 2xx nor exhausted, per endpoint",
            labels=["endpoint_id"],
        )
        oldest = GaugeMetricFamily(
            "orderflow_webhook_oldest_pending_age_seconds",
            "Age of the oldest open webhook delivery, per endpoint",
            labels=["endpoint_id"],
        )
        for endpoint_id, count, age in backlog:
            pending.add_metric([endpoint_id], float(count))
            oldest.add_metric([endpoint_id], float(age or 0))
        by_status = GaugeMetricFamily(
            "orderflow_webhook_endpoints", "Webhook endpoints by status", labels=["status"]
        )
        counts = dict.fromkeys(("enabled", "paused", "disabled"), 0) | {
            str(status): int(count) for status, count in endpoints
        }
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], float(count))
        yield pending
        yield oldest
        yield by_status
