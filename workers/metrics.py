"""Worker metrics: where the worker's processes record them, and the small HTTP endpoint
that serves them to Prometheus.

A Celery worker is one main process and a pool of child processes that run the tasks, so
its metrics use prometheus-client's multiprocess mode: every process writes its values to
files under ``PROMETHEUS_MULTIPROC_DIR`` and the endpoint adds them up at scrape time.

* ``ORDERFLOW_WORKER_METRICS_PORT`` set: the worker's main process serves
  ``http://ORDERFLOW_WORKER_METRICS_HOST:PORT/metrics`` (scrape each worker; works across
  hosts and containers).
* ``PROMETHEUS_MULTIPROC_DIR`` given by whoever starts the processes (``make run`` gives
  every process of the machine one directory): the API's ``/metrics`` adds the workers'
  values to its own, so one scrape shows everything.
* Neither: each worker process gets a private directory, and its metrics stay unserved.
"""

from __future__ import annotations

import os
import tempfile

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> str:
    """Make sure this process and the pool it forks record into a multiprocess directory;
    must run before ``orderflow.metrics`` is imported."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="orderflow-metrics-")
        os.environ[MULTIPROC_ENV] = directory
    os.makedirs(directory, exist_ok=True)
    return directory


def serve(host: str, port: int) -> None:
    """Serve the metrics of every process recording into the directory; call once, in the
    worker's main process (a daemon thread)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)


def process_exited(pid: int) -> None:
    """Forget the live gauges of a pool process that ended (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
