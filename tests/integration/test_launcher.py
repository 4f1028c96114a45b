"""``make run`` itself (``python -m workers.launcher``) on the tests' PostgreSQL and Redis:
every process it starts records into one Prometheus multiprocess directory, so the API's
``/metrics`` shows the pipeline's counters; an order waiting for 3-D Secure stays in
``orderflow_orders_stuck{reason="awaiting_customer_action"}`` at every scrape for as long as
it waits; and the local webhook secret the launcher makes lets the local customer-action
page complete it."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from orderflow.db import Database
from orderflow.settings import Settings
from tests.conftest import PASSWORD, order_body, wait_for_status
from tests.scrape import sample
from tests.system import free_port, wait_until

AT_REST = {"confirmed", "failed", "cancelled"}
STALL_SECONDS = 2.0
SWEEP_SECONDS = 0.5
STUCK = "orderflow_orders_stuck"


@dataclass
class Launched:
    base: str
    state_dir: Path
    process: subprocess.Popen[bytes]

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", timeout=10).text


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def launched(settings: Settings, clean_database: Database, tmp_path: Path) -> Iterator[Launched]:
    port, flower_port = free_port(), free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ORDERFLOW_") and name != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        ORDERFLOW_ENVIRONMENT="test",
        ORDERFLOW_DATABASE_URL=settings.database_url,
        ORDERFLOW_REDIS_URL=settings.redis_url,
        ORDERFLOW_STATE_DIR=str(tmp_path / "state"),
        ORDERFLOW_PORT=str(port),
        ORDERFLOW_FLOWER_PORT=str(flower_port),
        ORDERFLOW_SWEEP_INTERVAL_SECONDS=str(SWEEP_SECONDS),
        ORDERFLOW_SWEEP_STALL_SECONDS=str(STALL_SECONDS),
        ORDERFLOW_RELAY_POLL_SECONDS="0.5",
        ORDERFLOW_LOG_JSON="true",
    )
    log = (tmp_path / "launcher.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or _answers(f"{base}/readyz"), 120, 0.5)
        assert process.poll() is None, (tmp_path / "launcher.log").read_text()[-3000:]
        yield Launched(base, tmp_path / "state", process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def _customer(base: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
    email = f"launcher-{time.time_ns()}@example.com"
    assert client.post("/auth/register", json={"email": email, "password": PASSWORD}).is_success
    token = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    client.headers["Authorization"] = f"Bearer {token['access_token']}"
    client.cookies.clear()
    return client


def test_make_run_shares_metrics_and_completes_a_3ds_order(launched: Launched) -> None:
    # The local webhook secret was made once, kept in the state dir, readable by its owner.
    secret_file = launched.state_dir / "stripe-webhook-secret"
    assert secret_file.read_text().startswith("whsec_")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert list((launched.state_dir / "metrics").glob("*.db"))  # the shared directory

    customer = _customer(launched.base)
    product_id = customer.get("/products", params={"limit": 1}).json()["items"][0]["id"]
    paid = customer.post("/orders", json=order_body((product_id, 1))).json()["id"]
    waiting = customer.post(
        "/orders", json=order_body((product_id, 1), payment_method="pm_card_authenticationRequired")
    ).json()["id"]
    assert wait_for_status(customer, paid, AT_REST)["status"] == "confirmed"

    # The pipeline's counters, recorded in the worker, reach the API's /metrics.
    def counted() -> bool:
        scraped = launched.metrics()
        return all(
            (sample(scraped, name, **labels) or 0) >= 1
            for name, labels in (
                ("orderflow_tasks_total", {"task": "orderflow.reserve_stock"}),
                ("orderflow_tasks_total", {"task": "orderflow.send_email"}),
                ("orderflow_order_transitions_total", {"to_status": "confirmed"}),
                ("orderflow_provider_calls_total", {"operation": "charge"}),
                ("orderflow_outbox_published_total", {}),
            )
        )

    wait_until(counted, 30)

    # Waiting for the customer: in the gauge once it has not moved for the stall period,
    # and at every scrape after that, across several sweeps that look the payment up.
    def stuck() -> float | None:
        return sample(launched.metrics(), STUCK, reason="awaiting_customer_action")

    wait_until(lambda: stuck() == 1, 30)
    scrapes = []
    deadline = time.monotonic() + 3 * (STALL_SECONDS + SWEEP_SECONDS)
    while time.monotonic() < deadline:
        scrapes.append(stuck())
        time.sleep(0.2)
    assert scrapes == [1] * len(scrapes)
    assert len(scrapes) >= 5  # a scrape a few hundred ms apart, on a busy machine fewer

    # The local page completes it, through the webhook signed with the launcher's secret.
    url = customer.get(f"/orders/{waiting}").json()["next_action_url"]
    assert url == f"{launched.base}/api/v1/local-payments/" + url.rsplit("/", 1)[-1]
    answer = httpx.post(f"{url}/complete", timeout=30)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].endswith("?webhook=applied")
    assert wait_for_status(customer, waiting, AT_REST)["status"] == "confirmed"
    assert stuck() == 0
