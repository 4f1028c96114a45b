"""Operability with real worker processes (on the real Stripe and SendGrid SDKs against their
stubs, logging at DEBUG, serving their metrics): metrics move when orders flow, the request
id and order id travel from the API into the tasks' log lines, no secret reaches any log
line, the audit is clean after a normal run, and a parked order re-driven is confirmed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from orderflow.db import Database
from orderflow.fulfilment import charging, stock
from orderflow.models import Product
from orderflow.settings import Settings
from tests.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    Pipelines,
    order_body,
    wait_for_status,
)
from tests.integration.test_cli import orderflow
from tests.scrape import captured_logs, json_lines, read_logs, sample
from tests.stubs import STRIPE_WEBHOOK_SECRET, stub_provider_env
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub
from tests.system import SystemProcesses, free_port, wait_until

pytestmark = pytest.mark.workers

AT_REST = {"confirmed", "failed", "cancelled"}
STEPS = (
    "orderflow.reserve_stock",
    "orderflow.charge_payment",
    "orderflow.generate_invoice",
    "orderflow.send_email",
)


@pytest.fixture(scope="session")
def worker_metrics_port() -> int:
    return free_port()


@pytest.fixture
def ops_pipeline(
    pipelines: Pipelines,
    clean_database: Database,
    stripe_stub_shared: StripeStub,
    sendgrid_stub_shared: SendGridStub,
    worker_metrics_port: int,
) -> SystemProcesses:
    env = {
        **stub_provider_env(stripe_stub_shared, sendgrid_stub_shared),
        "ORDERFLOW_LOG_LEVEL": "DEBUG",
        "ORDERFLOW_WORKER_METRICS_PORT": str(worker_metrics_port),
    }
    return pipelines.use("operability", env, one_worker=True)  # one worker serves the metrics


@pytest.fixture
def worker_metrics(ops_pipeline: SystemProcesses, worker_metrics_port: int) -> Callable[[], str]:
    url = f"http://127.0.0.1:{worker_metrics_port}/metrics"

    def scrape() -> str:
        return httpx.get(url, timeout=10).text

    wait_until(lambda: _answers(url), 30)
    return scrape


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _place(client: httpx.Client, product: Product, pm: str = "pm_card_visa", **headers: str) -> str:
    answer = client.post(
        "/orders", json=order_body((product.id, 1), payment_method=pm), headers=headers
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _api_metrics(api_url: str) -> str:
    return httpx.get(f"{api_url}/metrics", timeout=10).text


def test_metrics_move_when_orders_flow(
    worker_metrics: Callable[[], str],
    api_url: str,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    product = make_product(stock=10)
    before_worker, before_api = worker_metrics(), _api_metrics(api_url)

    def count(text: str, name: str, **labels: str) -> float:
        return sample(text, name, **labels) or 0.0

    confirmed = _place(customer, product)
    declined = _place(customer, product, pm="pm_card_chargeDeclined")
    assert wait_for_status(customer, confirmed, AT_REST)["status"] == "confirmed"
    assert wait_for_status(customer, declined, AT_REST)["status"] == "failed"

    def settled() -> bool:  # the e-mails follow the status
        scraped = worker_metrics()
        sent = count(scraped, "orderflow_provider_calls_total", operation="send", outcome="sent")
        return sent - count(before_worker, "orderflow_provider_calls_total", operation="send") >= 2

    wait_until(settled, 30)
    after_worker, after_api = worker_metrics(), _api_metrics(api_url)

    def moved(before: str, after: str, name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    assert moved(before_api, after_api, "orderflow_orders_placed_total", currency="usd") == 2
    transitions = "orderflow_order_transitions_total"
    assert moved(before_worker, after_worker, transitions, to_status="confirmed") == 1
    assert moved(before_worker, after_worker, transitions, to_status="failed") == 1
    for step in STEPS:
        runs = moved(before_worker, after_worker, "orderflow_tasks_total", task=step)
        assert runs >= 1, step
        timed = moved(
            before_worker, after_worker, "orderflow_task_duration_seconds_count", task=step
        )
        assert timed == runs, step
    assert (
        moved(
            before_worker,
            after_worker,
            "orderflow_provider_calls_total",
            provider="stripe",
            operation="charge",
            outcome="succeeded",
        )
        == 1
    )
    assert (
        moved(
            before_worker,
            after_worker,
            "orderflow_provider_calls_total",
            provider="stripe",
            operation="charge",
            outcome="declined",
        )
        == 1
    )
    assert count(after_worker, "orderflow_provider_call_duration_seconds_count") > 0
    # At rest, nothing waits: the API's scrape-time gauges say so.
    wait_until(lambda: sample(_api_metrics(api_url), "orderflow_outbox_backlog") == 0, 30)
    scraped = _api_metrics(api_url)
    assert sample(scraped, "orderflow_queue_depth", queue="charge_payment") == 0
    assert sample(scraped, "orderflow_metrics_source_up", source="broker") == 1


def test_request_and_order_ids_travel_from_the_api_into_every_task(
    ops_pipeline: SystemProcesses,
    pipelines: Pipelines,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    product = make_product()
    order_id = _place(customer, product, **{"X-Request-ID": "req-travels-42"})
    assert wait_for_status(customer, order_id, AT_REST)["status"] == "confirmed"

    def task_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(read_logs(pipelines.log_dir))
            if line.get("order_id") == order_id and line.get("event") == "task finished"
        ]

    wait_until(lambda: {line["task"] for line in task_lines()} >= set(STEPS), 30)
    for line in task_lines():
        assert line["request_id"] == "req-travels-42", line
        assert line["outcome"] == "success"
    # Every log line a task wrote about this order names it and the request.
    about = [
        line
        for line in json_lines(read_logs(pipelines.log_dir))
        if line.get("task_id") and line.get("order_id") == order_id
    ]
    assert about
    assert all(line.get("request_id") == "req-travels-42" for line in about)


@pytest.fixture
def known_secrets(
    settings: Settings, stripe_stub_shared: StripeStub, sendgrid_stub_shared: SendGridStub
) -> dict[str, str]:
    return {
        "jwt secret": settings.jwt_secret.get_secret_value(),
        "stripe api key": stripe_stub_shared.api_key,
        "stripe webhook secret": STRIPE_WEBHOOK_SECRET,
        "sendgrid api key": sendgrid_stub_shared.api_key,
        "admin password": ADMIN_PASSWORD,
        "customer password": PASSWORD,
    }


@pytest.fixture
def api_logs() -> Iterator[list[str]]:
    with captured_logs() as lines:
        yield lines


def test_no_secret_reaches_any_log_line(
    ops_pipeline: SystemProcesses,
    pipelines: Pipelines,
    api_logs: list[str],
    api: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    known_secrets: dict[str, str],
) -> None:
    product = make_product()
    email, password, wrong = "leaky@example.com", "Sup3r-secret-passw0rd", "Wr0ng-passw0rd-xyz"
    assert (
        api.post(
            "/auth/register", json={"email": email, "password": password, "name": "L"}
        ).status_code
        == 201
    )
    assert api.post("/auth/login", json={"email": email, "password": wrong}).status_code == 401
    tokens = api.post("/auth/login", json={"email": email, "password": password}).json()
    api.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    refreshed = api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    order_id = _place(api, product)
    assert wait_for_status(admin, order_id, AT_REST)["status"] == "confirmed"
    api.post(
        "/webhooks/stripe",
        content=b'{"id": "evt_x"}',
        headers={"Stripe-Signature": "t=1,v1=" + "0" * 64},
    )
    wait_until(
        lambda: (
            order_id in read_logs(pipelines.log_dir)
            and "send_email" in read_logs(pipelines.log_dir)
        ),
        30,
    )
    secrets = {
        **known_secrets,
        "registered password": password,
        "mistyped password": wrong,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "rotated refresh token": refreshed["refresh_token"],
    }
    worker_logs = read_logs(pipelines.log_dir)
    everything = "\n".join(api_logs) + "\n" + worker_logs
    # The capture saw the traffic: API access lines and the worker's task lines.
    assert any('"api.access"' in line and order_id in line for line in api_logs)
    assert f'"order_id": "{order_id}"' in worker_logs
    leaked = [name for name, value in secrets.items() if value in everything]
    assert leaked == []


def test_audit_is_clean_after_a_normal_run(
    ops_pipeline: SystemProcesses,
    settings: Settings,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    product = make_product(stock=10)
    kept = _place(customer, product)
    declined = _place(customer, product, pm="pm_card_chargeDeclined")
    cancelled = _place(customer, product)
    for order_id in (kept, declined, cancelled):
        wait_for_status(customer, order_id, AT_REST)
    assert customer.delete(f"/orders/{cancelled}").status_code == 204

    def clean() -> bool:
        return bool(orderflow(settings, "audit").exit_code == 0)

    wait_until(clean, 30, interval=0.5)  # the refund and e-mails follow the cancel
    result = orderflow(settings, "audit")
    assert "no violations" in result.stdout


def test_a_parked_order_redriven_is_confirmed(
    ops_pipeline: SystemProcesses,
    settings: Settings,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    """The provider was down past the retries (the order parked); once it is back, the
    operator re-drives and the order is confirmed."""
    product = make_product(stock=5)
    ops_pipeline.kill("relay")  # the test alone moves the order until it is parked
    try:
        order_id = _place(customer, product)
        with clean_database.unit_of_work() as session:
            stock.reserve_stock(session, order_id)
            session.commit()
        with clean_database.unit_of_work() as session:
            assert charging.begin_charge(session, order_id) is not None
            session.commit()
        with clean_database.unit_of_work() as session:
            charging.give_up_charge(session, order_id, charging.PROVIDER_UNAVAILABLE)
            session.execute(
                text("UPDATE outbox SET dispatched_at = now() WHERE order_id = :id"),
                {"id": order_id},
            )
            session.commit()
    finally:
        ops_pipeline.start_relay()
    parked = customer.get(f"/orders/{order_id}").json()
    assert (parked["status"], parked["failure_reason"]) == (
        "pending",
        "payment_provider_unavailable",
    )
    result = orderflow(settings, "redrive")
    assert result.exit_code == 0, result.output
    assert f"re-drove {order_id}: orderflow.charge_payment" in result.stdout
    assert wait_for_status(customer, order_id, AT_REST)["status"] == "confirmed"
