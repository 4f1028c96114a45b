"""``GET /metrics``: Prometheus text. The counters and histograms of ``orderflow.metrics``,
plus gauges read from PostgreSQL and Redis when Prometheus scrapes (a custom collector):
the outbox backlog and its oldest message's age, every Celery queue's depth, and the
orders that are not at rest past the sweeper's threshold.

A scrape never fails because a source is down: its gauges are left out and
``orderflow_metrics_source_up{source=...}`` says 0."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from api.webhook_metrics import WebhookCollector
from orderflow import outbox
from orderflow.db import Database
from orderflow.fulfilment.redrive import stuck_orders
from orderflow.fulfilment.sweeper import find_stalled_work
from orderflow.shipments.repository import ShipmentRepository

router = APIRouter(tags=["operations"])
log = logging.getLogger("api.metrics")

#: Suffixes kombu's Redis transport gives a queue's priority lists.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
SCRAPE_STATEMENT_TIMEOUT_MS = 2000


class SystemCollector(Collector):
    """Gauges computed from the database and the broker at scrape time."""

    def __init__(self, app_state: Any, queues: Sequence[str], stall_seconds: float) -> None:
        self.state, self.queues, self.stall_seconds = app_state, tuple(queues), stall_seconds

    def describe(self) -> list[Metric]:
        return []  # not queried at registration; the names are checked by the tests

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "orderflow_metrics_source_up",
            "1 when the source of the scrape-time gauges answered",
            labels=["source"],
        )
        database = self._from_database()
        broker = self._from_broker()
        up.add_metric(["database"], 0 if database is None else 1)
        up.add_metric(["broker"], 0 if broker is None else 1)
        yield up
        yield from database or ()
        yield from broker or ()

    def _from_database(self) -> list[Metric] | None:
        database: Database | None = getattr(self.state, "database", None)
        if database is None:
            return None
        try:
            with database.session() as session:
                try:
                    session.execute(
                        text(f"SET LOCAL statement_timeout = {SCRAPE_STATEMENT_TIMEOUT_MS}")
                    )
                    backlog, oldest = outbox.backlog(session)
                    stuck = stuck_orders(session, self.stall_seconds)
                    stalled = find_stalled_work(session, self.stall_seconds, since_last_event=True)
                    shipments, labels = ShipmentRepository(session).count_by_status()
                finally:
                    session.rollback()  # read only
        except Exception as error:  # a scrape must not fail; the up gauge tells
            log.warning("metrics: database unavailable: %s", type(error).__name__)
            return None
        steps: dict[str, int] = {}
        for item in stalled:
            steps[item.step.value] = steps.get(item.step.value, 0) + 1
        return [
            _gauge("orderflow_outbox_backlog", "Outbox messages not yet on the broker", backlog),
            _gauge(
                "orderflow_outbox_oldest_age_seconds",
                "Age of the oldest outbox message not yet on the broker",
                oldest,
            ),
            _labelled(
                "orderflow_orders_stuck",
                "Pending orders that have not moved (no new event) for longer than the "
                "sweeper's threshold, by reason: stalled, awaiting_customer_action, or the "
                "failure they are parked on",
                "reason",
                stuck,
            ),
            _labelled(
                "orderflow_stalled_work",
                "Steps owed for longer than the sweeper's threshold, counted from the order's "
                "last event (capped per sweep batch)",
                "step",
                steps,
            ),
            _labelled("orderflow_shipments", "Shipments by status now", "status", shipments),
            _labelled(
                "orderflow_shipment_labels",
                "Shipments by label status now: none (no label wanted), pending (purchase "
                "under way), purchased, failed (refused or retries spent), voided",
                "status",
                labels,
            ),
        ]

    def _from_broker(self) -> list[Metric] | None:
        client = getattr(self.state, "redis", None)
        if client is None:
            return None
        try:
            pipe = client.pipeline(transaction=False)
            for queue in self.queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            pipe.hlen("unacked")
            answers = pipe.execute()
        except Exception as error:
            log.warning("metrics: broker unavailable: %s", type(error).__name__)
            return None
        per = len(_PRIORITY_SUFFIXES)
        depth = {q: sum(answers[i * per : (i + 1) * per]) for i, q in enumerate(self.queues)}
        return [
            _labelled(
                "orderflow_queue_depth", "Messages waiting in each Celery queue", "queue", depth
            ),
            _gauge(
                "orderflow_queue_unacked",
                "Messages delivered to workers and not yet acknowledged",
                answers[-1],
            ),
        ]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _labelled(
    name: str, documentation: str, label: str, counts: dict[str, int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([key], float(value))
    return family


class _ProcessMetrics(Collector):
    """This process's own metrics (the default registry), when not in multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def build_registry(
    app_state: Any, stall_seconds: float, queues: Sequence[str] | None = None
) -> CollectorRegistry:
    """What ``/metrics`` serves. In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) that is
    every process recording into the directory: uvicorn workers, and on one host the Celery
    workers and the relay too."""
    if queues is None:
        from celeryconfig import STEP_QUEUES, WEBHOOK_QUEUE  # the queue names' one home

        queues = (*STEP_QUEUES, WEBHOOK_QUEUE)
    registry = CollectorRegistry(auto_describe=False)
    if getattr(values.ValueClass, "_multiprocess", False):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(SystemCollector(app_state, queues, stall_seconds))
    registry.register(WebhookCollector(app_state))
    return registry


def metrics_response(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


_METRICS_EXAMPLE = """\
# HELP orderflow_orders_placed_total Orders accepted and committed, by currency
# TYPE orderflow_orders_placed_total counter
orderflow_orders_placed_total{currency="usd"} 42.0
# HELP orderflow_orders_stuck Pending orders that have not moved ...
# TYPE orderflow_orders_stuck gauge
orderflow_orders_stuck{reason="awaiting_customer_action"} 1.0
orderflow_orders_stuck{reason="stalled"} 0.0
"""


@router.get(
    "/metrics",
    response_class=Response,
    include_in_schema=True,
    summary="Prometheus metrics",
    description=(
        "Prometheus text exposition: HTTP requests, orders placed, status changes, task "
        "runs, provider calls (the workers' too when they share `PROMETHEUS_MULTIPROC_DIR`, "
        "as under `make run`), and gauges read from PostgreSQL and Redis at scrape time "
        "(outbox backlog, queue depths, stuck orders). Keep it off the internet."
    ),
    responses={
        200: {
            "description": "The metrics",
            "content": {"text/plain": {"example": _METRICS_EXAMPLE}},
        }
    },
)
def prometheus_metrics(request: Request) -> Response:
    """Prometheus text exposition of the API's (and, on one host, the workers') metrics."""
    return metrics_response(request)
