"""The outbox relay: ``python -m workers.relay``. Moves committed outbox messages onto the
broker and marks them dispatched. Wakes on PostgreSQL NOTIFY (sent when an order commits),
and polls as a fallback. Several relays may run: each locks its batch with SKIP LOCKED.

Delivery is at least once: a relay that dies after publishing and before marking publishes
the batch again, and the idempotent steps make that harmless."""

from __future__ import annotations

import signal
import time
from typing import Any

import psycopg
import structlog

from orderflow import outbox
from orderflow.db import Database, make_engine
from orderflow.logging import configure_logging
from orderflow.metrics import OUTBOX_PUBLISHED
from orderflow.settings import Settings
from orderflow.startup import check_services, exit_on_config_error, load_settings
from workers.app import app

log = structlog.get_logger("workers.relay")

#: Messages per transaction; each is a few hundred bytes, so a batch stays small.
RELAY_BATCH = 200


def publish(topic: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Send one task; ``headers`` carry the request id into the worker's log lines."""
    app.send_task(topic, kwargs=payload, headers=headers or None)
    OUTBOX_PUBLISHED.labels(topic).inc()


def relay_once(database: Database) -> int:
    """Publish one batch; return how many messages it held."""
    with database.unit_of_work() as session:
        batch = outbox.take_batch(session, RELAY_BATCH)
        for _, topic, payload in batch:
            kwargs, headers = outbox.task_call(payload)
            publish(topic, kwargs, headers)
        session.commit()
    return len(batch)


class Relay:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(make_engine(settings, pool_size=1))
        self.stopping = False

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> None:
        while not self.stopping:
            try:
                self._listen_and_relay()
            except (psycopg.OperationalError, OSError) as error:
                log.warning("relay lost its connection; retrying", error=str(error))
                time.sleep(1.0)
            except Exception:
                log.exception("relay failed a batch; retrying")
                time.sleep(1.0)
        self.database.dispose()

    def _listen_and_relay(self) -> None:
        raw = self.database.engine.raw_connection()
        try:
            connection: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
            connection.autocommit = True
            connection.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
            while not self.stopping:
                while relay_once(self.database) == RELAY_BATCH:
                    pass
                # Sleep until an order commits (NOTIFY) or the poll interval passes.
                for _ in connection.notifies(timeout=self.settings.relay_poll_seconds):
                    break
        finally:
            raw.invalidate()


def _checked_settings() -> Settings:
    settings = load_settings()
    check_services(settings)
    return settings


def main() -> None:
    settings = exit_on_config_error(_checked_settings, program="orderflow relay")
    configure_logging(settings)
    relay = Relay(settings)
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    log.info("outbox relay started")
    relay.run()


if __name__ == "__main__":
    main()
