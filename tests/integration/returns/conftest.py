"""Shipped orders to return, made by the real pipeline (local providers), and the calls a
return test makes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orderflow.models import Product
from tests.integration.shipments.conftest import ConfirmedOrder
from tests.integration.shipments.conftest import confirmed_order as confirmed_order
from tests.system import wait_until

ShippedOrder = Callable[..., dict[str, Any]]


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def ship(
    admin: httpx.Client,
    order_id: str,
    *lines: tuple[str, int],
    shipped_days_ago: float = 2,
    delivered_days_ago: float | None = 1,
) -> dict[str, Any]:
    """A shipment of ``lines`` (all that is left when none), under way since
    ``shipped_days_ago`` and delivered ``delivered_days_ago`` (None: not yet)."""
    shipment = new_shipment(admin, order_id, *lines)
    return move_shipment(admin, shipment["id"], shipped_days_ago, delivered_days_ago)


def new_shipment(admin: httpx.Client, order_id: str, *lines: tuple[str, int]) -> dict[str, Any]:
    body: dict[str, Any] = {"tracking_number": f"TRK-{uuid.uuid4().hex[:12]}"}
    if lines:
        body["lines"] = [{"product_id": p, "quantity": q} for p, q in lines]
    created = admin.post(f"/orders/{order_id}/shipments", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def move_shipment(
    admin: httpx.Client,
    shipment_id: str,
    shipped_days_ago: float = 2,
    delivered_days_ago: float | None = 1,
) -> dict[str, Any]:
    moves = [("in_transit", shipped_days_ago)]
    if delivered_days_ago is not None:
        moves.append(("delivered", delivered_days_ago))
    for status, days in moves:
        answer = admin.post(
            f"/shipments/{shipment_id}/events",
            json={"status": status, "occurred_at": days_ago(days)},
        )
        assert answer.status_code == 201, answer.text
    return dict(admin.get(f"/shipments/{shipment_id}").json())


@pytest.fixture
def shipped_order(confirmed_order: ConfirmedOrder, admin: httpx.Client) -> ShippedOrder:
    """A confirmed order of ``lines`` (product, quantity), every unit shipped in one
    shipment (``ship``'s dates)."""

    def make(*lines: tuple[Product, int], **dates: float | None) -> dict[str, Any]:
        order = confirmed_order(*lines)
        ship(admin, order["id"], **dates)  # type: ignore[arg-type]
        return dict(admin.get(f"/orders/{order['id']}").json())

    return make


def ask_return(
    client: httpx.Client, order_id: str, *lines: tuple[str, int], **headers: str
) -> httpx.Response:
    body = {"lines": [{"product_id": p, "quantity": q, "reason": "not as pictured"}
                      for p, q in lines]}  # fmt: skip
    return client.post(f"/orders/{order_id}/returns", json=body, headers=headers)


def receive(admin: httpx.Client, return_id: str, *lines: tuple[str, int, bool]) -> httpx.Response:
    body = {"lines": [{"product_id": p, "quantity": q, "restock": r} for p, q, r in lines]}
    return admin.post(f"/returns/{return_id}/receive", json=body)


def stock_of(admin: httpx.Client, product: Product) -> int:
    return int(admin.get(f"/products/{product.id}").json()["stock"])


def wait_for_return(
    client: httpx.Client, return_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(client.get(f"/returns/{return_id}").json())
        return seen.get("status") == status

    wait_until(reached, timeout)
    return seen
