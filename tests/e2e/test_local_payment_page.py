"""A person completes 3-D Secure on the local customer-action page, in a real browser, with no
network but this machine: the order, paid with ``pm_card_authenticationRequired``, is
confirmed by the signed webhook the page sends through ``POST /webhooks/stripe``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orderflow.models import Product
from tests.conftest import order_body, wait_for_status
from tests.e2e.conftest import Offline
from tests.system import SystemProcesses, wait_until

pytestmark = pytest.mark.workers

AT_REST = {"confirmed", "failed", "cancelled"}


def _waiting_order(customer: httpx.Client, product: Product) -> dict[str, Any]:
    body = order_body((product.id, 3), payment_method="pm_card_authenticationRequired")
    order_id = customer.post("/orders", json=body).json()["id"]
    seen: dict[str, Any] = {}

    def waiting() -> bool:
        seen.update(customer.get(f"/orders/{order_id}").json())
        return seen.get("next_action_url") is not None

    wait_until(waiting, 30)
    return seen


def test_a_person_completes_3ds_on_the_local_page(
    offline_page: Offline,
    local_pipeline: SystemProcesses,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order = _waiting_order(customer, make_product(price=1999, stock=5))
    assert order["status"] == "pending"
    page = offline_page.page
    page.goto(order["next_action_url"])
    assert page.locator("#order").inner_text() == order["id"]
    assert "5997 USD" in page.locator(".amount").inner_text()
    page.get_by_role("button", name="Complete").click()
    page.locator("#webhook").wait_for()
    assert "applied" in page.locator("#webhook").inner_text()
    assert "paid" in page.locator("#status").inner_text()
    assert page.get_by_role("button", name="Complete").count() == 0

    confirmed = wait_for_status(customer, order["id"], AT_REST)
    assert confirmed["status"] == "confirmed"
    assert confirmed["next_action_url"] is None
    assert offline_page.blocked == []


def test_a_person_fails_3ds_on_the_local_page(
    offline_page: Offline,
    local_pipeline: SystemProcesses,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order = _waiting_order(customer, make_product(price=1999, stock=5))
    page = offline_page.page
    page.goto(order["next_action_url"])
    page.get_by_role("button", name="Fail").click()
    page.locator("#webhook").wait_for()
    assert "authentication failed" in page.locator("#status").inner_text()
    failed = wait_for_status(customer, order["id"], AT_REST)
    assert (failed["status"], failed["failure_reason"]) == ("failed", "payment_declined")
