"""The dispatcher's statements and loop against the real database, without worker processes:
what a claim takes (each subject's lowest open sequence, its next once a success is recorded
in the same statement, an endpoint's free slots, every endpoint's share), that it writes no
index entry, that recording a failure does not block
the transactions writing new deliveries, and a dispatcher in this process delivering to a
real receiver that verifies every signature."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from orderflow.db import Database
from orderflow.settings import Settings
from orderflow.webhooks import delivery
from orderflow.webhooks.dispatcher import Dispatcher
from tests.receivers import Received, Receiver
from tests.system import wait_until

DATA = json.dumps({"id": "ord_x", "status": "placed"})


@pytest.fixture
def write_events(clean_database: Database) -> Callable[..., None]:
    """Events of one subject, sequence 1.., in one transaction: a delivery each for every
    enabled endpoint, as ``events.recorder`` writes them."""
    counter = iter(range(1, 1_000_000))

    def write(subject_id: str, count: int = 1) -> None:
        with clean_database.unit_of_work() as session:
            for _ in range(count):
                n = next(counter)
                session.execute(
                    text(
                        """
                        WITH ev AS (
                            INSERT INTO events (id, type, subject_type, subject_id, sequence, data)
                            SELECT :id, 'order.placed', 'order', CAST(:subject AS text),
                                   coalesce(max(sequence), 0) + 1, CAST(:data AS jsonb)
                            FROM events WHERE subject_id = CAST(:subject AS text)
                            RETURNING id, subject_type, subject_id, sequence)
                        INSERT INTO webhook_deliveries
                            (endpoint_id, event_id, subject_type, subject_id, sequence)
                        SELECT e.id, ev.id, ev.subject_type, ev.subject_id, ev.sequence
                        FROM ev, webhook_endpoints e WHERE e.status = 'enabled'
                        """
                    ),
                    {"id": f"evt_{n}", "subject": subject_id, "data": DATA},
                )
            session.commit()

    return write


@contextmanager
def raw_connection(database: Database) -> Iterator[psycopg.Connection[Any]]:
    raw = database.engine.raw_connection()
    try:
        connection: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        connection.autocommit = True
        yield connection
    finally:
        raw.invalidate()


def _claim(
    database: Database, settings: Settings, limit: int, in_flight: dict[str, int] | None = None
) -> list[delivery.Job]:
    with raw_connection(database) as connection:
        return delivery.record_and_claim(connection, settings, [], limit, in_flight or {})


def test_a_claim_takes_only_the_lowest_open_sequence_of_each_subject(
    clean_database: Database,
    settings: Settings,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
) -> None:
    subscribe("/a", "*")
    write_events("ord_1", 3)
    write_events("ord_2", 1)
    claimed = _claim(clean_database, settings, 10)
    assert sorted(json.loads(job.body)["subject"]["id"] for job in claimed) == ["ord_1", "ord_2"]
    assert all(json.loads(job.body)["sequence"] == 1 for job in claimed)
    # Claimed, not yet answered: nothing else of these subjects may go.
    assert _claim(clean_database, settings, 10) == []


def test_a_success_and_the_claim_of_its_subject_s_next_go_in_one_statement(
    clean_database: Database,
    settings: Settings,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
) -> None:
    subscribe("/a", "*")
    write_events("ord_1", 2)
    (first,) = _claim(clean_database, settings, 10)
    with raw_connection(clean_database) as connection:
        answered = [(first, delivery.Outcome(200, None))]
        (second,) = delivery.record_and_claim(connection, settings, answered, 10, {})
    assert [json.loads(job.body)["sequence"] for job in (first, second)] == [1, 2]
    with clean_database.unit_of_work() as session:
        statuses = session.execute(
            text("SELECT status, claimed_until IS NULL FROM webhook_deliveries ORDER BY id")
        ).all()
    assert [tuple(row) for row in statuses] == [("succeeded", True), ("pending", False)]


def test_a_claim_keeps_to_the_endpoint_s_free_slots_and_leaves_the_rest_to_others(
    clean_database: Database,
    settings: Settings,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
) -> None:
    busy = subscribe("/busy", "*")[0]
    for n in range(30):
        write_events(f"ord_{n}")  # a backlog for /busy, older than anything of /late
    late = subscribe("/late", "*")[0]
    write_events("ord_late")
    limit = settings.webhook_max_in_flight_per_endpoint  # 2
    claimed = _claim(clean_database, settings, 100, {busy: limit - 1})
    by_endpoint = [job.endpoint_id for job in claimed]
    assert by_endpoint.count(busy) == 1  # one slot was free
    assert by_endpoint.count(late) == 1  # the other endpoint is not hidden behind the backlog
    assert _claim(clean_database, settings, 100, {busy: limit, late: limit}) == []


def test_between_sweeps_a_claim_looks_back_only_a_few_seconds(
    clean_database: Database,
    settings: Settings,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
) -> None:
    """A delivery due a minute ago is left to the sweep, unless its endpoint's oldest open
    delivery (as the last sweep saw it) is that old."""
    endpoint_id = subscribe("/a", "*")[0]
    write_events("ord_1")
    with clean_database.unit_of_work() as session:
        session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 minute'")
        )
        session.commit()
    with raw_connection(clean_database) as connection:
        assert delivery.record_and_claim(connection, settings, [], 10, {}, since={}) == []
        oldest = delivery.oldest_open(connection)
        assert list(oldest) == [endpoint_id]
        (found,) = delivery.record_and_claim(connection, settings, [], 10, {}, since=oldest)
        assert found.endpoint_id == endpoint_id
    write_events("ord_2")
    with clean_database.unit_of_work() as session:
        session.execute(
            text(
                "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour' "
                "WHERE subject_id = 'ord_2'"
            )
        )
        session.commit()
    (swept,) = _claim(clean_database, settings, 10)  # a sweep: no window
    assert json.loads(swept.body)["subject"]["id"] == "ord_2"


def test_a_claim_writes_no_index_entry(
    clean_database: Database,
    settings: Settings,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
) -> None:
    """A heap-only update: the claim changes no indexed column (fillfactor leaves room)."""
    subscribe("/a", "*")
    for n in range(5):
        write_events(f"ord_{n}")
    roomy = settings.model_copy(update={"webhook_max_in_flight_per_endpoint": 10})
    with raw_connection(clean_database) as connection, connection.transaction():
        claimed = delivery.record_and_claim(connection, roomy, [], 10, {})
        row = connection.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE relname = 'webhook_deliveries'"
        ).fetchone()
    assert len(claimed) == 5
    assert row == (5, 5)


def test_recording_a_failure_does_not_hold_up_new_deliveries(
    clean_database: Database,
    settings: Settings,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
) -> None:
    """A failure locks its endpoint's row to mark it failing; the transactions that write
    new deliveries for that endpoint (their foreign key locks it too) must not wait for it,
    or two such transactions locking two endpoints in turn deadlock."""
    first, second = subscribe("/a", "*")[0], subscribe("/b", "*")[0]
    write_events("ord_1")
    jobs = _claim(clean_database, settings, 10)
    assert {job.endpoint_id for job in jobs} == {first, second}
    failed = [(job, delivery.Outcome(500, "down")) for job in jobs]
    with clean_database.unit_of_work() as session:
        recorded = delivery.record_failures(session, failed, settings)
        assert [done.status for done in recorded] == ["failed", "failed"]
        # The failures' transaction is still open while an event is written for both.
        writer = threading.Thread(target=write_events, args=("ord_2",))
        writer.start()
        writer.join(10)
        assert not writer.is_alive(), "writing new deliveries waited for the failure's lock"
        session.commit()
    with clean_database.unit_of_work() as session:
        open_ = session.scalar(
            text("SELECT count(*) FROM webhook_deliveries WHERE subject_id = 'ord_2'")
        )
        failing = session.scalar(
            text("SELECT count(*) FROM webhook_endpoints WHERE failing_since IS NOT NULL")
        )
    assert (open_, failing) == (2, 2)


def test_the_rounds_commit_without_waiting_for_the_wal(settings: Settings) -> None:
    """Losing a round to a PostgreSQL crash costs at most a resend; the rest stays durable."""
    dispatcher = Dispatcher(settings, threads=1)
    try:
        rounds = dispatcher._connection().execute("SHOW synchronous_commit").fetchone()
        with dispatcher.database.engine.connect() as other:
            failures = other.exec_driver_sql("SHOW synchronous_commit").scalar()
    finally:
        dispatcher._drop_connection()
        dispatcher.database.dispose()
    assert (rounds, failures) == (("off",), "on")


@pytest.fixture
def dispatcher(settings: Settings) -> Iterator[Dispatcher]:
    """A dispatcher in this process, quick to retry and to sweep."""
    dispatching = settings.model_copy(
        update={
            "webhook_allow_private_urls": True,
            "webhook_retry_schedule": "0.2",
            "webhook_dispatch_interval_seconds": 0.1,
        }
    )
    running = Dispatcher(dispatching, threads=4)
    running.start()
    yield running
    running.stop(wait=5)


def _succeeded(database: Database) -> int:
    with database.unit_of_work() as session:
        return int(
            session.scalar(
                text("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")
            )
        )


def _sequences_by_subject(arrived: list[Received]) -> dict[str, list[int]]:
    """The sequence numbers each subject's deliveries arrived with, in arrival order."""
    by_subject: dict[str, list[int]] = {}
    for item in arrived:
        by_subject.setdefault(item.body["subject"]["id"], []).append(item.body["sequence"])
    return by_subject


def test_a_dispatcher_delivers_signed_events_in_order_and_records_them(
    clean_database: Database,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
    dispatcher: Dispatcher,
) -> None:
    endpoint_id = subscribe("/hook", "*")[0]
    receiver.script("/hook", 500, 200)  # the first attempt fails, its retry succeeds
    write_events("ord_1", 3)
    write_events("ord_2", 2)
    wait_until(lambda: _succeeded(clean_database) == 5, 20)
    dispatcher.stop(wait=5)
    assert receiver.unverified == []
    arrivals = _sequences_by_subject(receiver.at("/hook")[1:])  # after the failed attempt
    assert arrivals == {"ord_1": [1, 2, 3], "ord_2": [1, 2]}
    with clean_database.unit_of_work() as session:
        attempts = session.execute(
            text(
                "SELECT sum(attempts), count(*) FILTER (WHERE claimed_until IS NULL) "
                "FROM webhook_deliveries WHERE endpoint_id = :id"
            ),
            {"id": endpoint_id},
        ).one()
    assert tuple(attempts) == (6, 5)  # one retry; no claim left behind


def test_a_dispatcher_whose_database_connections_die_goes_on(
    clean_database: Database,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    write_events: Callable[..., None],
    dispatcher: Dispatcher,
) -> None:
    """PostgreSQL restarting, as the dispatcher sees it: its rounds' and its listener's
    connections cut while deliveries are in flight. It reconnects by itself; every event
    arrives, in order per subject."""
    subscribe("/hook", "*")
    receiver.script("/hook", 200, delay=0.2)  # some attempts are in flight at the cut
    write_events("ord_1", 3)
    wait_until(lambda: len(receiver.at("/hook")) >= 1, 10)
    assert dispatcher._raw is not None
    rounds = dispatcher._raw.driver_connection.info.backend_pid
    with clean_database.unit_of_work() as session:
        cut = session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() "
                "AND (pid = :rounds OR query = 'LISTEN orderflow_webhooks')"
            ),
            {"rounds": rounds},
        )
    assert cut == 2
    write_events("ord_2", 2)
    wait_until(lambda: _succeeded(clean_database) == 5, 30)
    assert receiver.unverified == []
    arrivals = _sequences_by_subject(receiver.at("/hook"))
    assert {subject: sorted(set(seen)) for subject, seen in arrivals.items()} == {
        "ord_1": [1, 2, 3],
        "ord_2": [1, 2],
    }
    for seen in arrivals.values():  # at least once, each subject in order
        assert seen == sorted(seen)
