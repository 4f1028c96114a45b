"""The same tracking updates in any arrival order, some of them redelivered, applied through
``record_tracking`` on the real database (each in its own transaction, as a webhook's or an
admin's would be): the shipment ends in the status of the latest update, dated as it, with
each distinct update recorded once and the audit clean. The pure machine is checked with
many more orders in ``tests/unit/shipments/test_state.py``."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.fulfilment.shipping import record_tracking
from orderflow.models import Product, Shipment, ShipmentEvent
from orderflow.orders.state import ActorRole
from orderflow.shipments.repository import TrackingUpdate
from orderflow.statuses import ShipmentStatus
from tests.integration.shipments.conftest import ConfirmedOrder
from tests.unit.shipments.test_state import tracking_walks

pytestmark = pytest.mark.workers

EXAMPLES = 25


@pytest.fixture
def units_to_ship(
    confirmed_order: ConfirmedOrder, make_product: Callable[..., Product]
) -> dict[str, str]:
    """A confirmed order with a unit to ship for every example (one shipment each)."""
    mug = make_product(stock=EXAMPLES + 5)
    order = confirmed_order((mug, EXAMPLES + 5))
    return {"order_id": order["id"], "product_id": mug.id}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(walk=tracking_walks(), seed=st.integers(0, 2**32), repeats=st.integers(0, 4))
def test_any_arrival_order_of_the_same_updates_ends_in_the_same_state(
    units_to_ship: dict[str, str],
    admin: httpx.Client,
    database: Database,
    walk: list[ShipmentStatus],
    seed: int,
    repeats: int,
) -> None:
    order_id, product_id = units_to_ship["order_id"], units_to_ship["product_id"]
    created = admin.post(
        f"/orders/{order_id}/shipments",
        json={"lines": [{"product_id": product_id, "quantity": 1}]},
    )
    assert created.status_code == 201, created.text
    shipment_id = created.json()["id"]
    start = datetime.now(UTC) - timedelta(hours=12)
    updates = [TrackingUpdate(s, start + timedelta(minutes=i)) for i, s in enumerate(walk)]
    rng = random.Random(seed)
    arrivals = updates + [rng.choice(updates) for _ in range(repeats)]
    rng.shuffle(arrivals)
    for update in arrivals:
        with database.unit_of_work() as session:
            record_tracking(
                session, shipment_id, update, role=ActorRole.ADMIN, actor="usr_property",
                source="property",
            )  # fmt: skip
            session.commit()

    with database.unit_of_work() as session:
        shipment = session.get(Shipment, shipment_id)
        assert shipment is not None
        assert (shipment.status, shipment.status_at) == (walk[-1], updates[-1].occurred_at)
        recorded = session.scalar(
            select(func.count())
            .select_from(ShipmentEvent)
            .where(ShipmentEvent.shipment_id == shipment_id)
        )
        assert recorded == len(updates)
        assert [v for v in audit(session) if v.subject in (order_id, shipment_id)] == []
        session.commit()
