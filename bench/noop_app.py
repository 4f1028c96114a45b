"""The pipeline baseline: ``celery -A bench.noop_app worker``.

The same Celery settings as the system (``config_from_object("celeryconfig")``: the same
broker, ``acks_late``, ``reject_on_worker_lost``, prefetch 1, task events on, JSON) and the
same step queues, but tasks that do nothing. An order's pipeline becomes a chain of as many
no-op tasks as the real pipeline runs per order, each on the queue of the step it stands
for; the last one records when it finished in Redis.

With ``latencies`` (``bench.provider_latency``), the tasks standing for the steps that call a
provider sleep what the provider would take (the same mean and jitter as the stand-ins),
run by workers on the same pools as the real steps: the best the pipeline could do if our
own work cost nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from functools import cache

import redis
from celery import Celery, chain

app = Celery("bench_noop")
app.config_from_object("celeryconfig")

#: Hash of chain id -> epoch seconds at which its last task finished.
DONE_KEY = "bench:noop:done"
#: The queues the real steps run on, in pipeline order.
STEP_QUEUES = ("reserve_stock", "charge_payment", "generate_invoice", "send_email")


@cache
def _store() -> redis.Redis:
    return redis.Redis.from_url(str(app.conf.broker_url), socket_timeout=5)


@app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop(chain_id: str, last: bool = False, sleep: float = 0.0, jitter: float = 0.0) -> None:
    if sleep > 0:
        time.sleep(random.uniform(sleep - jitter, sleep + jitter))
    if last:
        _store().hset(DONE_KEY, chain_id, repr(time.time()))


def submit(
    chain_id: str, steps: int, latencies: Mapping[str, tuple[float, float]] | None = None
) -> None:
    """Start one order's worth of chained no-op tasks; a task on a queue named in
    ``latencies`` sleeps (mean, jitter) seconds."""
    tasks = []
    for step in range(steps):
        queue = STEP_QUEUES[min(step, len(STEP_QUEUES) - 1)]
        sleep, jitter = (latencies or {}).get(queue, (0.0, 0.0))
        signature = noop.si(chain_id, last=step == steps - 1, sleep=sleep, jitter=jitter)
        tasks.append(signature.set(queue=queue))
    chain(*tasks).apply_async()
