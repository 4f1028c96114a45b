"""The webhook dispatcher: one loop per webhooks worker that claims due deliveries in
batches, posts them from a pool of sending threads, and records their outcomes in batches.

Why not a Celery task per delivery: a delivery is one small POST, and a broker message, a
task, a claim and a record for each cost several times the POST (issue 15 measured about
5 ms of the worker's CPU a delivery that way). Here a round is one statement that records
every attempt answered 2xx since the last round and claims as many due deliveries as there
are idle sending threads; under load a round carries many deliveries.

What wakes a round: a sending thread finishing an attempt, a new delivery committed (the
``orderflow_webhooks`` NOTIFY of a trigger on ``webhook_deliveries``, heard by a listening
thread), a retry asked for (``delivery.wake_dispatchers``), or the next sweep's time. A
round looks at the deliveries due in the last few seconds, or since its endpoint's oldest
open delivery; every ``ORDERFLOW_WEBHOOK_DISPATCH_INTERVAL_SECONDS`` a sweep looks at every
due delivery (retries whose time came long ago, claims of killed workers that expired, a
delivery whose transaction took longer than the window to commit). Why: a finished
delivery leaves a dead entry in the index a claim walks, until a vacuum; a claim that looks
back only a few seconds steps over a few seconds' worth, not a vacuum interval's.

Isolation: at most ``threads`` attempts at once, each cut off at the timeout, and at most
the in-flight limit of them for one endpoint; a hanging receiver holds only its own
endpoint's slots, never the loop (which waits on nobody's answer). The delivery table is the
only state: a dispatcher killed mid-flight leaves leases that expire, and any dispatcher
(several may run, on several hosts) sends those deliveries again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import psycopg
import structlog
from sqlalchemy.pool import PoolProxiedConnection

from orderflow import metrics
from orderflow.db import Database, make_engine
from orderflow.settings import Settings
from orderflow.webhooks import delivery

log = structlog.get_logger(__name__)

#: Wait before trying again after the database failed a round or the listener's connection.
RECONNECT_SECONDS = 1.0

#: How long a round waits for more attempts to finish while some are in flight.
GATHER_SECONDS = 0.005

#: What the sending threads and the listener put on the loop's queue: an attempt's outcome,
#: or ``None`` (look for due deliveries).
_Wake = tuple[delivery.Job, delivery.Outcome] | None


class Dispatcher:
    def __init__(self, settings: Settings, threads: int) -> None:
        self.settings = settings
        self.threads = threads
        # The rounds' connection, the listener's, and one for recording failures.
        self.database = Database(make_engine(settings, pool_size=3, max_overflow=0))
        self.transport = delivery.new_transport(settings)
        self.senders = ThreadPoolExecutor(threads, thread_name_prefix="webhook-sender")
        self.wakes: queue.SimpleQueue[_Wake] = queue.SimpleQueue()
        self.in_flight = 0
        #: Attempts under way, by endpoint (the in-flight limit is this dispatcher's).
        self.attempts: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._raw: PoolProxiedConnection | None = None
        #: When the next round is a sweep (looks at every due delivery, not only the recent
        #: ones) and, from the last sweep, each endpoint's oldest open delivery's due time.
        self.next_sweep = 0.0
        self.oldest_open: dict[str, datetime] = {}
        #: Rounds run and deliveries claimed (logged when it stops).
        self.rounds = self.claims = 0

    def start(self) -> None:
        """The loop and the listener, each on a daemon thread of this process."""
        for name, target in (("webhook-dispatcher", self.run), ("webhook-listener", self.listen)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("webhook dispatcher started", threads=self.threads)

    def stop(self, wait: float | None = None) -> None:
        """Claim nothing more; the attempts in flight are finished and recorded first."""
        self.stopping.set()
        self.wakes.put(None)
        for thread in self._threads:
            thread.join(wait)

    def run(self) -> None:
        finished: list[tuple[delivery.Job, delivery.Outcome]] = []
        while not self.stopping.is_set() or self.in_flight:
            finished.extend(self._wait())
            try:
                self._round(finished)
            except Exception:  # the database: keep what finished, record it next round
                log.exception("webhook dispatcher round failed; retrying")
                time.sleep(RECONNECT_SECONDS)
        self.senders.shutdown()
        log.info("webhook dispatcher stopped", rounds=self.rounds, claims=self.claims)
        self._drop_connection()
        self.transport.close()
        self.database.dispose()

    def _wait(self) -> list[tuple[delivery.Job, delivery.Outcome]]:
        """The attempts finished by the time the first wake comes (or the next sweep is
        due), every other wake already queued, and, while attempts are still in flight,
        those that finish within ``GATHER_SECONDS`` more: under load a round then carries
        many outcomes instead of one (a transaction each would cost more than the POSTs)."""
        finished: list[tuple[delivery.Job, delivery.Outcome]] = []
        timeout: float | None = max(0.001, self.next_sweep - time.monotonic())
        gather_until = None
        while True:
            try:
                wake = self.wakes.get(timeout=timeout) if timeout else self.wakes.get_nowait()
            except queue.Empty:
                return finished
            if wake is not None:
                finished.append(wake)
            if gather_until is None:
                gather_until = time.monotonic() + GATHER_SECONDS
            still_flying = self.in_flight > len(finished)
            timeout = max(0.0, gather_until - time.monotonic()) if still_flying else 0.0

    def _round(self, finished: list[tuple[delivery.Job, delivery.Outcome]]) -> None:
        """Record what finished and claim what there are idle threads for: one statement on
        the round's own connection (and a transaction before it for failures, which are rare
        and may disable an endpoint). What is recorded leaves ``finished``; what a failed
        round did not record stays in it for the next."""
        failed = [attempt for attempt in finished if not attempt[1].succeeded]
        if failed:
            with self.database.unit_of_work() as session:
                recorded = delivery.record_failures(session, failed, self.settings)
                session.commit()
            finished[:] = [attempt for attempt in finished if attempt[1].succeeded]
            self._settle(recorded)
        # The successes' slots count as free already: the statement records them first.
        busy = self.attempts - Counter(job.endpoint_id for job, _ in finished)
        free = 0 if self.stopping.is_set() else self.threads - self.in_flight + len(finished)
        sweep = time.monotonic() >= self.next_sweep
        try:
            connection = self._connection()
            since = None if sweep else self.oldest_open
            claimed = delivery.record_and_claim(
                connection, self.settings, finished, free, busy, since
            )
            if sweep:
                self.oldest_open = delivery.oldest_open(connection)
                self.next_sweep = time.monotonic() + self.settings.webhook_dispatch_interval_seconds
        except Exception:
            self._drop_connection()
            raise
        self._settle([delivery.Recorded(job, outcome, "succeeded") for job, outcome in finished])
        finished.clear()
        self.rounds += 1
        self.claims += len(claimed)
        metrics.WEBHOOK_DISPATCH_ROUNDS.labels("yes" if claimed else "no").inc()
        for job in claimed:
            self.in_flight += 1
            self.attempts[job.endpoint_id] += 1
            self.senders.submit(self._send, job)

    def _settle(self, recorded: list[delivery.Recorded]) -> None:
        """Attempts recorded: their slots are free again; counted and logged."""
        for done in recorded:
            self.in_flight -= 1
            self.attempts[done.job.endpoint_id] -= 1
            _report(done)
        self.attempts += Counter()  # drops the endpoints with none left

    def _connection(self) -> psycopg.Connection[Any]:
        """The rounds' connection (taken from the pool once, kept; autocommit: a round's one
        statement is its own transaction).

        Its commits do not wait for the WAL to reach the disk (``synchronous_commit = off``):
        an fsync a round was a fifth of the rounds' PostgreSQL time. What a crash of
        PostgreSQL can then lose is the last fraction of a second of rounds: claims (taken
        again when their lease would have ended anyway) and successes (those deliveries are
        sent again, with the same ``webhook-id``), both within the at-least-once promise."""
        if self._raw is None:
            self._raw = self.database.engine.raw_connection()
            connection: psycopg.Connection[Any] = self._raw.driver_connection  # type: ignore[assignment]
            connection.autocommit = True
            connection.execute("SET synchronous_commit = off")
        return self._raw.driver_connection  # type: ignore[return-value]

    def _drop_connection(self) -> None:
        if self._raw is not None:
            self._raw.invalidate()
            self._raw = None

    def _send(self, job: delivery.Job) -> None:
        started = time.perf_counter()
        try:
            outcome = delivery.send(job, self.settings, self.transport)
        except Exception as error:  # never lose the slot: an unforeseen failure is an outcome
            log.exception("webhook attempt failed unexpectedly", delivery_id=job.delivery_id)
            outcome = delivery.Outcome(None, f"{type(error).__name__}: {error}"[:500])
        metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.perf_counter() - started)
        metrics.WEBHOOK_ATTEMPTS.labels(outcome.label).inc()
        self.wakes.put((job, outcome))

    def listen(self) -> None:
        """Wake the loop on every committed new delivery (NOTIFY); reconnect on failure."""
        while not self.stopping.is_set():
            try:
                self._listen_once()
            except (psycopg.OperationalError, OSError) as error:
                log.warning("webhook listener lost its connection; retrying", error=str(error))
                time.sleep(RECONNECT_SECONDS)

    def _listen_once(self) -> None:
        raw = self.database.engine.raw_connection()
        try:
            connection: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
            connection.autocommit = True
            connection.execute(f"LISTEN {delivery.NOTIFY_CHANNEL}")
            self.wakes.put(None)  # anything committed while it was not listening
            while not self.stopping.is_set():
                for _ in connection.notifies(timeout=1.0):
                    self.wakes.put(None)
                    break
        finally:
            raw.invalidate()


def _report(done: delivery.Recorded) -> None:
    job, outcome = done.job, done.outcome
    metrics.WEBHOOK_DELIVERIES.labels(done.status).inc()
    if done.endpoint_disabled:
        metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
        log.warning("webhook endpoint disabled", endpoint_id=job.endpoint_id, url=job.url)
    # Every attempt is in the delivery log (the API); the log file names the failures.
    subject_type, subject_id = job.subject
    (log.debug if outcome.succeeded else log.info)(
        "webhook attempt",
        **({"order_id": subject_id} if subject_type == "order" else {"subject": subject_id}),
        delivery_id=job.delivery_id,
        event_id=job.event_id,
        endpoint_id=job.endpoint_id,
        attempt=job.attempt,
        status_code=outcome.status_code,
        outcome=done.status,
    )
