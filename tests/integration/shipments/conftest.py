"""Confirmed orders to ship, made by the real pipeline (local providers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orderflow.models import Product
from tests.conftest import order_body, wait_for_status
from tests.system import SystemProcesses

ConfirmedOrder = Callable[..., dict[str, Any]]


@pytest.fixture
def confirmed_order(
    local_pipeline: SystemProcesses, customer: httpx.Client, admin: httpx.Client
) -> ConfirmedOrder:
    """Place an order of ``lines`` (product, quantity) as the customer; wait until the
    pipeline confirmed it."""

    def make(*lines: tuple[Product, int]) -> dict[str, Any]:
        answer = customer.post(
            "/orders", json=order_body(*((product.id, qty) for product, qty in lines))
        )
        assert answer.status_code == 201, answer.text
        return wait_for_status(admin, answer.json()["id"], {"confirmed"})

    return make
