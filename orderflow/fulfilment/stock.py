"""Reserving stock for an order: all lines or none, never below zero."""

from __future__ import annotations

import structlog
from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from orderflow.fulfilment.outcomes import fail_order
from orderflow.fulfilment.reservations import give_back_stock, has_reservations
from orderflow.fulfilment.steps import Step, schedule
from orderflow.models import Order, Product, StockReservation, table_of, update_now
from orderflow.orders.events import SYSTEM_ACTOR, record_event
from orderflow.orders.lifecycle import lock_order
from orderflow.orders.state import OrderStatus

log = structlog.get_logger(__name__)

INSUFFICIENT_STOCK = "insufficient_stock"


def reserve_stock(session: Session, order_id: str) -> None:
    """Take stock for every line of a pending order, then schedule the charge.

    Lines are taken in product-id order with a conditional ``UPDATE … WHERE stock >= qty``,
    so concurrent orders never deadlock and stock never goes below zero. A short line gives
    back the lines already taken (their rows stay locked by this transaction, so exactly) and
    fails the order.
    """
    order = lock_order(session, order_id)
    if order.status != OrderStatus.PENDING.value or has_reservations(session, order_id):
        return
    short = _take_all_lines(session, order)
    if short is not None:
        log.info("stock short", order_id=order_id, product_id=short)
        fail_order(session, order, INSUFFICIENT_STOCK, {"product_id": short})
        return
    record_event(
        session,
        order_id,
        "stock_reserved",
        SYSTEM_ACTOR,
        {"lines": [{"product_id": li.product_id, "quantity": li.quantity} for li in order.lines]},
    )
    update_now(session, order)
    schedule(session, Step.CHARGE_PAYMENT, order_id)


def _take_all_lines(session: Session, order: Order) -> str | None:
    """Reserve every line or none; return the first product that was short."""
    taken: list[tuple[str, int]] = []
    for line in sorted(order.lines, key=lambda line: line.product_id):
        wanted = {"product_id": line.product_id, "quantity": line.quantity}
        if session.execute(_TAKE_STOCK, wanted).first() is None:
            give_back_stock(session, taken)
            return line.product_id
        taken.append((line.product_id, line.quantity))
    session.execute(
        _INSERT_RESERVATIONS,
        [{"order_id": order.id, "product_id": p, "quantity": q} for p, q in taken],
    )
    return None


_products = table_of(Product)
# Built once (compiled and cache-keyed once): run for every line of every order.
_TAKE_STOCK = (
    update(_products)
    .where(_products.c.id == bindparam("product_id"), _products.c.stock >= bindparam("quantity"))
    .values(stock=_products.c.stock - bindparam("quantity"))
    .returning(_products.c.id)
)
_INSERT_RESERVATIONS = insert(table_of(StockReservation))
