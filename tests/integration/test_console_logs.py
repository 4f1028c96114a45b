"""What an operator's console shows, with real worker processes logging at DEBUG: one info
line per order change (placed in the API, each status move in the workers), and nothing at
info from the periodic upkeep while the system is idle."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderflow.db import Database
from orderflow.models import Product
from tests.conftest import Pipelines, order_body, wait_for_status
from tests.scrape import captured_logs, json_lines
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers


@pytest.fixture
def debug_pipeline(pipelines: Pipelines, clean_database: Database) -> SystemProcesses:
    """Workers, relay and beat (a sweep every second) on the local providers, at DEBUG."""
    return pipelines.use("local-debug", {"ORDERFLOW_LOG_LEVEL": "DEBUG"})


@pytest.fixture
def api_lines() -> Iterator[list[str]]:
    with captured_logs() as lines:
        yield lines


def _log_sizes(pipelines: Pipelines) -> dict[Path, int]:
    return {path: path.stat().st_size for path in pipelines.log_dir.glob("*.log")}


def _worker_lines(pipelines: Pipelines, since: dict[Path, int]) -> list[dict[str, Any]]:
    """The JSON lines the worker-side processes wrote after ``since`` (sizes of their logs)."""
    text = []
    for path in sorted(pipelines.log_dir.glob("*.log")):
        with path.open("rb") as log:
            log.seek(since.get(path, 0))
            text.append(log.read().decode(errors="replace"))
    return json_lines("\n".join(text))


def _about_upkeep(line: dict[str, Any]) -> bool:
    text = f"{line.get('event', '')} {line.get('task', '')}"
    return "orderflow.maintenance." in text or line.get("event") == "nothing stalled"


def test_an_idle_system_says_nothing_at_info(
    debug_pipeline: SystemProcesses, pipelines: Pipelines
) -> None:
    since = _log_sizes(pipelines)

    def sweeps() -> list[dict[str, Any]]:
        return [
            line
            for line in _worker_lines(pipelines, since)
            if line.get("event") == "task finished" and line.get("task", "").endswith(".sweep")
        ]

    wait_until(lambda: len(sweeps()) >= 3, 30)  # three idle sweeps went by
    upkeep = [line for line in _worker_lines(pipelines, since) if _about_upkeep(line)]
    # Beat sent each, the worker received, ran and finished each: all of it at debug.
    assert any("Sending due task" in line["event"] for line in upkeep)
    assert any(line["event"].endswith(" received") for line in upkeep)
    assert any(" succeeded in " in line["event"] for line in upkeep)
    assert {line["level"] for line in upkeep} == {"debug"}, [
        line["event"] for line in upkeep if line["level"] != "debug"
    ]


def test_each_order_change_is_one_info_line(
    debug_pipeline: SystemProcesses,
    pipelines: Pipelines,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    api_lines: list[str],
) -> None:
    since = _log_sizes(pipelines)
    product = make_product(price=1500, currency="jpy")
    orders = {}
    for payment_method in ("pm_card_visa", "pm_card_chargeDeclined"):
        answer = customer.post(
            "/orders", json=order_body((product.id, 2), payment_method=payment_method)
        )
        assert answer.status_code == 201, answer.text
        orders[payment_method] = answer.json()["id"]
        assert wait_for_status(customer, orders[payment_method], {"confirmed", "failed"})
    confirmed, failed = orders["pm_card_visa"], orders["pm_card_chargeDeclined"]

    def changes(order_id: str) -> list[dict[str, Any]]:
        found = [
            line
            for line in _worker_lines(pipelines, since) + json_lines("\n".join(api_lines))
            if line.get("logger") == "orderflow.orders" and line.get("order_id") == order_id
        ]
        return sorted(found, key=lambda line: str(line["timestamp"]))

    wait_until(lambda: len(changes(confirmed)) == 2 and len(changes(failed)) == 2, 10)
    time.sleep(0.5)  # nothing more comes
    placed, moved = changes(confirmed)
    assert placed["event"] == f"order {confirmed} placed: pending, 1 line(s), ¥3,000"
    assert moved["event"] == f"order {confirmed} pending → confirmed (stock_reserved_and_paid)"
    assert (moved["from_status"], moved["to_status"]) == ("pending", "confirmed")
    assert changes(failed)[1]["event"] == f"order {failed} pending → failed (payment_declined)"
    assert {line["level"] for line in changes(confirmed) + changes(failed)} == {"info"}
