"""Reserving stock for an order: all lines or none, never below zero."""

from __future__ import annotations

import structlog
from sqlalchemy import insert
from sqlalchemy.orm import Session

from orderflow.event_types import OrderEventType
from orderflow.fulfilment.moves import fail_order
from orderflow.fulfilment.reservations import give_back_stock, has_reservations, take_stock
from orderflow.models import Order, StockReservation, table_of
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.statuses import OrderStatus
from orderflow.steps import Step, schedule

log = structlog.get_logger(__name__)

INSUFFICIENT_STOCK = "insufficient_stock"


def reserve_stock(session: Session, order_id: str) -> None:
    """Take stock for every line of a pending order, then schedule the charge.

    Lines are taken in product-id order with a conditional ``UPDATE … WHERE stock >= qty``,
    so concurrent orders never deadlock and stock never goes below zero. A short line gives
    back the lines already taken (their rows stay locked by this transaction, so exactly) and
    fails the order.
    """
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    if order.status != OrderStatus.PENDING or has_reservations(session, order_id):
        return
    short = _take_all_lines(session, order)
    if short is not None:
        log.info("stock short", order_id=order_id, product_id=short)
        fail_order(orders, order, INSUFFICIENT_STOCK, {"product_id": short})
        return
    orders.record_event(
        order_id,
        OrderEventType.STOCK_RESERVED,
        SYSTEM_ACTOR,
        {"lines": [{"product_id": li.product_id, "quantity": li.quantity} for li in order.lines]},
    )
    orders.touch(order)
    schedule(session, Step.CHARGE_PAYMENT, order_id)


def _take_all_lines(session: Session, order: Order) -> str | None:
    """Reserve every line or none; return the first product that was short."""
    taken: list[tuple[str, int]] = []
    for line in sorted(order.lines, key=lambda line: line.product_id):
        if not take_stock(session, line.product_id, line.quantity):
            give_back_stock(session, taken)
            return line.product_id
        taken.append((line.product_id, line.quantity))
    session.execute(
        _INSERT_RESERVATIONS,
        [{"order_id": order.id, "product_id": p, "quantity": q} for p, q in taken],
    )
    return None


#: Built once (compiled and cache-keyed once): every order runs it.
_INSERT_RESERVATIONS = insert(table_of(StockReservation))
