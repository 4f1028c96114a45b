"""Worker signals: per-process set-up after the fork, and the order id on every log line.

Also: the start-up checks (database and broker reachable, else one line and exit 2), the
request id that travelled from the HTTP request in the task's headers, per-task latency and
outcome metrics, and the worker's metrics endpoint."""

from __future__ import annotations

import os
import time
from typing import Any

import structlog
from celery.signals import (
    beat_init,
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from orderflow import metrics
from orderflow.logging import REQUEST_ID, configure_logging
from orderflow.settings import get_settings
from orderflow.startup import check_services, exit_on_config_error
from orderflow.steps import Step
from orderflow.webhooks.dispatcher import Dispatcher
from tasks import runtime
from tasks.reporting import task_finished
from workers import metrics as worker_metrics
from workers.quiet import quiet_routine_tasks

log = structlog.get_logger("workers.tasks")

#: When each running task started (by task id), for its latency.
_started: dict[str, float] = {}


@setup_logging.connect
def _logging(**_: Any) -> None:
    configure_logging(get_settings())
    quiet_routine_tasks()


@worker_init.connect
def _check_services(**_: Any) -> None:
    """Refuse to start, in one line, when PostgreSQL or Redis cannot be used."""
    exit_on_config_error(lambda: check_services(get_settings()), program="orderflow worker")


#: Pools whose tasks run as processes of their own, one task at a time each.
_PROCESS_POOLS = ("celery.concurrency.prefork", "celery.concurrency.solo")


@worker_init.connect
def _size_database_pool(sender: Any = None, **_: Any) -> None:
    """A worker whose pool runs tasks side by side in this process (``threads``, gevent,
    eventlet) gets a database pool sized for its concurrency; prefork keeps the default."""
    pool = getattr(sender, "pool_cls", None)
    module = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    concurrency = getattr(sender, "concurrency", None)
    if module and module not in _PROCESS_POOLS and isinstance(concurrency, int):
        runtime.configure_pool(concurrency)
        log.info("database pool sized for the threads", pool=runtime.pool_size())


@worker_init.connect
def _serve_steps_here(sender: Any = None, **_: Any) -> None:
    """The steps this worker runs itself when the step before schedules them (tasks.pipeline):
    those routed to a queue it consumes. Set before the pool forks, so every process has it."""
    if sender is None or not get_settings().continue_steps_in_process:
        return
    consumed = set(sender.app.amqp.queues.consume_from)
    routes = sender.app.conf.task_routes or {}
    steps = frozenset(s.value for s in Step if routes.get(s.value, {}).get("queue") in consumed)
    runtime.serve_steps_here(steps)
    log.info("this worker goes on with these steps itself", steps=sorted(steps))


@beat_init.connect
def _check_broker(**_: Any) -> None:
    """Beat only publishes: it needs the broker, not the database."""
    exit_on_config_error(
        lambda: check_services(get_settings(), database=False), program="orderflow beat"
    )


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    settings = get_settings()
    if settings.worker_metrics_port:
        worker_metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
        log.info(
            "worker metrics served",
            address=f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics",
        )


#: The webhook dispatcher of this worker, if it consumes the ``webhooks`` queue.
_dispatcher: Dispatcher | None = None


@worker_ready.connect
def _dispatch_webhooks(sender: Any = None, **_: Any) -> None:
    """A worker on the ``webhooks`` queue sends the deliveries too: it runs a dispatcher
    (claims due deliveries in batches, POSTs them from its own threads)."""
    global _dispatcher
    from celeryconfig import WEBHOOK_QUEUE  # the queue names' one home

    consumed = set(sender.app.amqp.queues.consume_from) if sender is not None else set()
    if WEBHOOK_QUEUE not in consumed or _dispatcher is not None:
        return
    settings = get_settings()
    _dispatcher = Dispatcher(settings, settings.webhook_sending_threads)
    _dispatcher.start()


@worker_shutdown.connect
def _stop_dispatching(**_: Any) -> None:
    """Claim nothing more; record what is in flight (each attempt ends by its timeout)."""
    if _dispatcher is not None:
        _dispatcher.stop(wait=2 * get_settings().webhook_timeout_seconds)


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    runtime.reset()


@worker_process_shutdown.connect
def _process_gone(**_: Any) -> None:
    worker_metrics.process_exited(os.getpid())


@task_prerun.connect
def _bind_order(task_id: str, task: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id)
    if kwargs and "order_id" in kwargs:
        structlog.contextvars.bind_contextvars(order_id=kwargs["order_id"])
    request_id = getattr(task.request, REQUEST_ID, None)
    if isinstance(request_id, str) and request_id:
        structlog.contextvars.bind_contextvars(request_id=request_id)
    _started[task_id] = time.perf_counter()


@task_failure.connect
def _count_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    name = getattr(sender, "name", "unknown")
    metrics.TASK_FAILURES.labels(name, type(exception).__name__).inc()


@task_postrun.connect
def _unbind(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    outcome = (state or "unknown").lower()
    if started is not None:
        task_finished(task.name, outcome, time.perf_counter() - started)
    structlog.contextvars.clear_contextvars()
