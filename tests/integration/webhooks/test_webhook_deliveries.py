"""Outgoing webhooks with real worker processes and real HTTP receivers that verify every
delivery with the ``standardwebhooks`` library: each matching event once, retries with the
same webhook-id, 500/429/timeout/410/3xx, per-subject order, rotation, pause, replay, manual
retry, a worker killed mid-delivery with Redis flushed, a hanging receiver beside a healthy
one while orders flow."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from orderflow.db import Database
from orderflow.email import LocalEmailSender
from orderflow.events.types import EventType
from orderflow.idempotency import webhook_notice_message_key
from orderflow.models import Product, User
from orderflow.settings import Settings
from orderflow.webhooks import endpoints, notices
from tests.conftest import Pipelines, order_body, wait_for_status
from tests.receivers import Receiver
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers

WEBHOOK_ENV = {
    "ORDERFLOW_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "ORDERFLOW_WEBHOOK_RETRY_SCHEDULE": "1,1",
    "ORDERFLOW_WEBHOOK_TIMEOUT_SECONDS": "1",
    "ORDERFLOW_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.5",
    "ORDERFLOW_WEBHOOK_REDISPATCH_SECONDS": "3",
}


@pytest.fixture
def system(pipelines: Pipelines, clean_database: Database) -> SystemProcesses:
    running = pipelines.use("webhooks", WEBHOOK_ENV)
    if "webhooks" not in running.processes:
        running.start_webhook_worker()
    return running


def _deliveries(database: Database, endpoint_id: str) -> list[dict[str, Any]]:
    with database.unit_of_work() as session:
        rows = session.execute(
            text(
                "SELECT d.*, ev.type FROM webhook_deliveries d JOIN events ev "
                "ON ev.id = d.event_id WHERE endpoint_id = :id ORDER BY d.id"
            ),
            {"id": endpoint_id},
        ).mappings()
        return [dict(row) for row in rows]


def _place(customer: httpx.Client, product: Product, payment_method: str = "pm_card_visa") -> str:
    answer = customer.post(
        "/orders", json=order_body((product.id, 1), payment_method=payment_method)
    )
    assert answer.status_code == 201
    return str(answer.json()["id"])


def test_each_matching_event_once_signed_and_in_order(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    subscribe("/orders", "order.*")
    subscribe("/payments", "payment.succeeded")
    order_id = _place(customer, make_product())
    wait_for_status(customer, order_id, {"confirmed"})
    wait_until(lambda: len(receiver.at("/orders")) >= 2 and receiver.at("/payments"), 20)
    time.sleep(1.5)  # nothing more arrives
    orders_seen = receiver.at("/orders")
    assert [r.body["type"] for r in orders_seen] == ["order.placed", "order.confirmed"]
    assert [r.body["sequence"] for r in orders_seen] in ([1, 3], [1, 2])
    (payment,) = receiver.at("/payments")
    assert payment.body["type"] == "payment.succeeded"
    assert payment.body["data"]["status"] == "confirmed"
    for item in [*orders_seen, payment]:
        assert item.headers["webhook-id"] == item.body["id"]
        assert item.body["subject"] == {"type": "order", "id": order_id}
        event = admin.get(f"/events/{item.body['id']}").json()
        assert event == item.body
    assert receiver.unverified == []


def test_a_failing_receiver_is_retried_with_the_same_id(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    receiver.script("/flaky", 500, 503, 200)
    endpoint_id, _ = subscribe("/flaky", "order.placed")
    _place(customer, make_product())
    wait_until(lambda: len(receiver.at("/flaky")) >= 3, 20)
    ids = {item.headers["webhook-id"] for item in receiver.at("/flaky")}
    assert len(ids) == 1
    wait_until(
        lambda: (
            admin.get(f"/webhook-endpoints/{endpoint_id}/deliveries").json()["items"][0]["status"]
            == "succeeded"
        ),
        10,
    )
    (delivery,) = admin.get(f"/webhook-endpoints/{endpoint_id}/deliveries").json()["items"]
    assert delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200
    assert delivery["event_id"] == ids.pop()


def test_a_receiver_down_then_up_gets_the_event_later_with_the_same_id(
    system: SystemProcesses,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with clean_database.unit_of_work() as session:
        created = endpoints.create_endpoint(
            session, f"http://127.0.0.1:{port}/later", ["order.placed"], None, allow_private=True
        )
        session.commit()
    endpoint_id = created.endpoint.id
    _place(customer, make_product())

    def first_failure() -> bool:
        return any(
            d["attempts"] >= 1 and d["last_error"] for d in _deliveries(clean_database, endpoint_id)
        )

    wait_until(first_failure, 20)
    (failed,) = _deliveries(clean_database, endpoint_id)
    assert failed["status"] == "failed"
    assert failed["last_status_code"] is None
    up = Receiver(port)  # the receiver comes back, on the same address
    try:
        up.secrets.append(created.secret)
        wait_until(lambda: up.at("/later"), 20)
        (arrived,) = up.at("/later")
        assert arrived.headers["webhook-id"] == failed["event_id"] == arrived.body["id"]
        assert arrived.body["type"] == "order.placed"
        wait_until(lambda: _deliveries(clean_database, endpoint_id)[0]["status"] == "succeeded", 10)
        (logged,) = admin.get(f"/webhook-endpoints/{endpoint_id}/deliveries").json()["items"]
        assert logged["attempts"] >= 2
        assert (logged["last_status_code"], logged["last_error"]) == (200, None)
        assert up.unverified == []
    finally:
        up.close()


def test_retry_after_is_honoured(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    receiver.script("/busy", 429, 200, Retry_After="3")
    subscribe("/busy", "order.placed")
    _place(customer, make_product())
    wait_until(lambda: len(receiver.at("/busy")) >= 2, 20)
    first, second = receiver.at("/busy")[:2]
    assert second.at - first.at >= 2.9  # the schedule says 1 s, the receiver 3 s


def test_timeouts_3xx_exhaust_and_the_subject_moves_on(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    receiver.script("/slow", 200, delay=2.5)  # past the 1 s timeout
    receiver.script("/moved", 302, Location="http://127.0.0.1:9/elsewhere")
    slow_id, _ = subscribe("/slow", "order.placed")
    moved_id, _ = subscribe("/moved", "order.placed", "order.cancelled")
    order_id = _place(customer, make_product())
    # schedule "1,1": three attempts each, then exhausted
    wait_until(
        lambda: {d["status"] for d in _deliveries(clean_database, slow_id)} == {"exhausted"}, 30
    )
    slow = _deliveries(clean_database, slow_id)[0]
    assert slow["attempts"] == 3
    assert "timed out" in slow["last_error"]
    wait_until(lambda: _deliveries(clean_database, moved_id)[0]["status"] == "exhausted", 30)
    assert _deliveries(clean_database, moved_id)[0]["last_status_code"] == 302
    assert len(receiver.at("/moved")) == 3  # the redirect was never followed
    assert not any(r.path == "/elsewhere" for r in receiver.received)
    # The exhausted first event no longer holds its subject: the next one goes.
    receiver.script("/moved", 200)
    assert admin.delete(f"/orders/{order_id}").status_code == 204
    wait_until(lambda: any(r.body["type"] == "order.cancelled" for r in receiver.at("/moved")), 20)
    # A manual retry may still succeed.
    exhausted = admin.get(
        f"/webhook-endpoints/{moved_id}/deliveries", params={"status": "exhausted"}
    ).json()["items"]
    assert len(exhausted) == 1
    assert admin.post(f"/webhook-deliveries/{exhausted[0]['id']}/retry").status_code == 202
    wait_until(
        lambda: {d["status"] for d in _deliveries(clean_database, moved_id)} == {"succeeded"}, 20
    )
    retried = admin.post(f"/webhook-deliveries/{exhausted[0]['id']}/retry")
    assert retried.status_code == 409


def test_410_disables_the_endpoint(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
    settings: Settings,
) -> None:
    receiver.script("/gone", 410)
    endpoint_id, _ = subscribe("/gone", "order.placed")
    product = make_product()
    _place(customer, product)
    wait_until(
        lambda: admin.get(f"/webhook-endpoints/{endpoint_id}").json()["status"] == "disabled", 20
    )
    assert admin.get(f"/webhook-endpoints/{endpoint_id}").json()["disabled_reason"] == "gone"
    _place(customer, product)
    time.sleep(1.5)
    assert len(receiver.at("/gone")) == 1
    assert len(_deliveries(clean_database, endpoint_id)) == 1  # none made while disabled
    # Disabled by the system, whatever the reason: the admins are told.
    (notice,) = _notices_sent(clean_database, endpoint_id, 1)
    message = _read_notice(settings, endpoint_id, notice)
    assert "410 Gone" in _text_of(message)


def _admin_addresses(database: Database) -> list[str]:
    with database.unit_of_work() as session:
        return list(session.scalars(text("SELECT email FROM users WHERE role = 'admin'")))


def _notices_sent(database: Database, endpoint_id: str, count: int) -> list[str]:
    """Wait for ``count`` sent notices of the endpoint's first disablement; their recipients."""

    def sent() -> list[str]:
        with database.unit_of_work() as session:
            return list(
                session.scalars(
                    text(
                        "SELECT recipient FROM webhook_endpoint_notices WHERE endpoint_id = :id "
                        "AND disablement = 1 AND status = 'sent' ORDER BY recipient"
                    ),
                    {"id": endpoint_id},
                )
            )

    wait_until(lambda: len(sent()) >= count, 20)
    return sent()


def _read_notice(settings: Settings, endpoint_id: str, recipient: str) -> EmailMessage:
    sender = LocalEmailSender(settings.emails_dir, settings.email_from)
    message = sender.read(webhook_notice_message_key(endpoint_id, 1, recipient))
    assert message is not None
    assert message["To"] == recipient
    assert message["Subject"] == f"Webhook endpoint {endpoint_id} was disabled"
    return message


def _text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())


def test_an_endpoint_failing_for_days_is_disabled_and_the_admins_told_once(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    clean_database: Database,
    settings: Settings,
) -> None:
    make_user("second-admin@example.com", role="admin")
    admins = sorted(_admin_addresses(clean_database))
    assert len(admins) == 2
    receiver.script("/dying", 500)
    endpoint_id, _ = subscribe("/dying", "order.placed")
    # It has answered nothing but failures for six days (ORDERFLOW_WEBHOOK_DISABLE_AFTER_DAYS
    # is five): the next failure disables it.
    with clean_database.unit_of_work() as session:
        session.execute(
            text(
                "UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' "
                "WHERE id = :id"
            ),
            {"id": endpoint_id},
        )
        session.commit()
    _place(customer, make_product())
    wait_until(
        lambda: admin.get(f"/webhook-endpoints/{endpoint_id}").json()["status"] == "disabled", 20
    )
    assert admin.get(f"/webhook-endpoints/{endpoint_id}").json()["disabled_reason"] == "failing"
    assert _notices_sent(clean_database, endpoint_id, 2) == admins
    notice_files = {}
    for address in admins:
        shown = _text_of(_read_notice(settings, endpoint_id, address))
        assert f"{receiver.url}/dying" in shown
        assert "every delivery attempt failed for 5 days" in shown
        assert "500" in shown  # the last error the receiver gave
        assert f"/webhook-endpoints/{endpoint_id}/replay" in shown
        sender = LocalEmailSender(settings.emails_dir, settings.email_from)
        path = sender.path_for(webhook_notice_message_key(endpoint_id, 1, address))
        notice_files[path] = path.stat().st_mtime_ns

    # The notices' message delivered again (a redelivery): through the relay and the
    # webhooks worker, and nothing is sent twice.
    log = system.log_dir / "webhooks.log"

    def notices_run() -> int:
        return log.read_text(errors="replace").count(f"{notices.NOTIFY_TASK}[")

    before = notices_run()
    with clean_database.unit_of_work() as session:
        notices.schedule(session, endpoint_id, 1)
        session.commit()
    wait_until(lambda: notices_run() >= before + 2, 20)  # received, then succeeded
    time.sleep(0.5)
    assert _notices_sent(clean_database, endpoint_id, 2) == admins
    assert {path: path.stat().st_mtime_ns for path in notice_files} == notice_files
    with clean_database.unit_of_work() as session:
        endpoint = session.execute(
            text(
                "SELECT disablements, notified_disablements FROM webhook_endpoints WHERE id = :id"
            ),
            {"id": endpoint_id},
        ).one()
    assert tuple(endpoint) == (1, 1)


def test_per_subject_order_waits_for_the_earlier_event(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    receiver.script("/ordered", 500, 200)  # the first event needs a retry
    subscribe("/ordered", "order.*")
    order_id = _place(customer, make_product())
    wait_for_status(customer, order_id, {"confirmed"})
    wait_until(lambda: len({r.body["id"] for r in receiver.at("/ordered")}) >= 2, 20)
    arrivals = [(r.body["sequence"], r.body["type"]) for r in receiver.at("/ordered")]
    assert arrivals[:2] == [(1, "order.placed"), (1, "order.placed")]
    assert arrivals[2][1] == "order.confirmed"


def test_rotation_signs_with_both_secrets(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    endpoint_id, old = subscribe("/rotated", "order.placed")
    rotated = admin.post(f"/webhook-endpoints/{endpoint_id}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old
    receiver.secrets.append(new)
    _place(customer, make_product())
    wait_until(lambda: receiver.at("/rotated"), 20)
    (item,) = receiver.at("/rotated")
    assert set(item.verified_with) == {old, new}
    assert len(item.headers["webhook-signature"].split(" ")) == 2


def test_a_paused_endpoint_gets_nothing_until_resumed(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    endpoint_id, _ = subscribe("/paused", "order.placed")
    paused = admin.patch(f"/webhook-endpoints/{endpoint_id}", json={"status": "paused"})
    assert paused.json()["status"] == "paused"
    product = make_product()
    _place(customer, product)
    time.sleep(1.5)
    assert receiver.at("/paused") == []
    assert _deliveries(clean_database, endpoint_id) == []
    admin.patch(f"/webhook-endpoints/{endpoint_id}", json={"status": "enabled"})
    _place(customer, product)
    wait_until(lambda: receiver.at("/paused"), 20)
    assert len(receiver.at("/paused")) == 1


def test_replay_resends_a_window_with_the_original_ids(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    endpoint_id, _ = subscribe("/replayed", "order.placed")
    product = make_product()
    for _ in range(2):
        _place(customer, product)
    wait_until(lambda: len(receiver.at("/replayed")) == 2, 20)
    first_ids = sorted(r.headers["webhook-id"] for r in receiver.at("/replayed"))
    answer = admin.post(
        f"/webhook-endpoints/{endpoint_id}/replay", json={"since": "2000-01-01T00:00:00Z"}
    )
    assert answer.status_code == 202
    assert answer.json() == {"deliveries": 2}
    wait_until(lambda: len(receiver.at("/replayed")) == 4, 20)
    ids = sorted(r.headers["webhook-id"] for r in receiver.at("/replayed"))
    assert ids == sorted(first_ids * 2)


def test_nothing_is_lost_when_the_worker_dies_and_redis_is_flushed(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    make_product: Callable[..., Product],
    redis_url: str,
) -> None:
    receiver.script("/killed", 200, delay=0.8)  # slow enough to be killed mid-delivery
    subscribe("/killed", "order.placed")
    product = make_product()
    placed = {_place(customer, product) for _ in range(3)}
    wait_until(lambda: receiver.at("/killed"), 20)
    system.kill("webhooks")
    redis.Redis.from_url(redis_url).flushdb()
    receiver.script("/killed", 200)
    system.start_webhook_worker()
    wait_until(lambda: {r.body["subject"]["id"] for r in receiver.at("/killed")} >= placed, 40)


def test_a_hanging_receiver_delays_neither_others_nor_the_pipeline(
    system: SystemProcesses,
    receiver: Receiver,
    subscribe: Callable[..., tuple[str, str]],
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    receiver.script("/hangs", 200, delay=30)
    subscribe("/hangs", "*")
    subscribe("/healthy", "order.placed")
    product = make_product(stock=100)
    started = time.time()  # the receiver notes arrivals in wall-clock time
    orders = [_place(customer, product) for _ in range(8)]
    for order_id in orders:
        wait_for_status(customer, order_id, {"confirmed"}, timeout=30)
    wait_until(lambda: len(receiver.at("/healthy")) == 8, 20)
    healthy = receiver.at("/healthy")
    assert max(item.at for item in healthy) - started < 15
    assert {item.body["subject"]["id"] for item in healthy} == set(orders)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://192.168.0.1/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_unsafe_urls_are_refused(admin: httpx.Client, url: str) -> None:
    answer = admin.post("/webhook-endpoints", json={"url": url, "event_types": ["order.*"]})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_event_types_are_checked(admin: httpx.Client) -> None:
    for types in ([], ["order.exploded"], ["orders.*"]):
        answer = admin.post(
            "/webhook-endpoints", json={"url": "https://93.184.216.34/", "event_types": types}
        )
        assert answer.status_code == 422, types
    assert len(EventType) == 18
