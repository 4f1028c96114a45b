"""Orders owing texts, made in the database without the pipeline (the SMS step is what is
under test here; the pipeline's own path to shipped is tested end to end)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from orderflow.auth.service import register_user
from orderflow.db import Database
from orderflow.fulfilment.sms_notices import owe_sms
from orderflow.models import Order, Product
from orderflow.orders import service as orders
from orderflow.statuses import OrderStatus
from tests.conftest import PASSWORD, place_command

PHONE = "+14155550123"


@dataclass(frozen=True)
class OwedOrder:
    order_id: str
    customer_id: str


MakeOwed = Callable[..., OwedOrder]


@pytest.fixture
def order_owing_sms(clean_database: Database, make_product: Callable[..., Product]) -> MakeOwed:
    """An order moved to ``status`` (shipped by default) in the database, its customer
    registered with ``phone`` and ``sms_opt_in``; the move's hook (``owe_sms``) run as
    ``moves.move`` runs it."""

    def make(
        status: OrderStatus = OrderStatus.SHIPPED,
        *,
        phone: str | None = PHONE,
        sms_opt_in: bool = True,
    ) -> OwedOrder:
        product = make_product()
        with clean_database.unit_of_work() as session:
            customer = register_user(
                session,
                f"texts-{uuid.uuid4().hex[:8]}@example.com",
                PASSWORD,
                "Jane",
                phone=phone,
                sms_opt_in=sms_opt_in,
            )
            order = orders.place_order(session, place_command(customer.id, (product.id, 1)))
            session.execute(update(Order).where(Order.id == order.id).values(status=status))
            moved = session.get(Order, order.id)
            assert moved is not None
            owe_sms(session, moved, status)
            session.commit()
            return OwedOrder(order.id, customer.id)

    return make
