"""Stock held by an order, and giving it back exactly once."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from orderflow.event_types import OrderEventType
from orderflow.models import Product, StockReservation, table_of
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository


def take_stock(session: Session, product_id: str, quantity: int) -> bool:
    """Take ``quantity`` of the product if that many are in stock; the row stays locked."""
    taken = session.execute(_TAKE, {"product_id": product_id, "quantity": quantity}).first()
    return taken is not None


def give_back_stock(session: Session, lines: list[tuple[str, int]]) -> None:
    """Add (product id, quantity) back to the stock, in the order given."""
    if lines:
        session.execute(_GIVE_BACK, [{"product_id": p, "quantity": q} for p, q in lines])


def has_reservations(session: Session, order_id: str) -> bool:
    return session.scalar(_ANY_RESERVATION, {"order_id": order_id}) is not None


_products = table_of(Product)
#: Built once (compiled and cache-keyed once), as the statements below: every line of every
#: order. Conditional, so stock never goes below zero.
_TAKE = (
    update(_products)
    .where(_products.c.id == bindparam("product_id"), _products.c.stock >= bindparam("quantity"))
    .values(stock=_products.c.stock - bindparam("quantity"))
    .returning(_products.c.id)
)
_GIVE_BACK = (
    update(_products)
    .where(_products.c.id == bindparam("product_id"))
    .values(stock=_products.c.stock + bindparam("quantity"))
)
#: Asked by the reservation and the charge steps.
_ANY_RESERVATION = (
    select(StockReservation.id).where(StockReservation.order_id == bindparam("order_id")).limit(1)
)


def release_stock(session: Session, order_id: str) -> int:
    """Give back what the order holds. Marking the reservations released and restoring the
    stock happen in one statement pair of one transaction, so it happens once."""
    released = session.execute(
        update(StockReservation)
        .where(StockReservation.order_id == order_id, StockReservation.released_at.is_(None))
        .values(released_at=func.now())
        .returning(StockReservation.product_id, StockReservation.quantity)
    ).all()
    give_back_stock(session, sorted(released))
    if released:
        OrderRepository(session).record_event(
            order_id,
            OrderEventType.STOCK_RELEASED,
            SYSTEM_ACTOR,
            {"lines": [{"product_id": p, "quantity": q} for p, q in sorted(released)]},
        )
    return len(released)


def lower_reservations(
    session: Session, order_id: str, lowered: list[tuple[str, int]], actor: str
) -> list[tuple[str, int]]:
    """Lines of the order lowered to (product id, new quantity; 0: removed): give back what
    their live reservations hold beyond that, once (each reservation is lowered or released
    in the UPDATE that returns what it gave back; the stock ledger records both). Nothing
    for a line not reserved yet (the reservation step will take the new quantity). Returns
    (product id, units given back)."""
    given: list[tuple[str, int]] = []
    for product_id, quantity in sorted(lowered):
        row = session.execute(
            _LOWER if quantity > 0 else _RELEASE_LINE,
            {"lower_order_id": order_id, "lower_product_id": product_id, "new_quantity": quantity},
        ).first()
        if row is not None and row.given > 0:
            given.append((product_id, int(row.given)))
    give_back_stock(session, given)
    if given:
        OrderRepository(session).record_event(
            order_id,
            OrderEventType.STOCK_RELEASED,
            actor,
            {"lines": [{"product_id": p, "quantity": q} for p, q in given],
             "reason": "order_changed"},
        )  # fmt: skip
    return given


_reservations = table_of(StockReservation)
_this_live_reservation = (
    (_reservations.c.order_id == bindparam("lower_order_id"))
    & (_reservations.c.product_id == bindparam("lower_product_id"))
    & _reservations.c.released_at.is_(None)
)
#: The reservation's old quantity is read in the UPDATE's FROM (a self-join on the locked
#: row), so what is given back is exactly what this statement took off it.
_old = _reservations.alias("old")
_LOWER = (
    update(_reservations)
    .where(_this_live_reservation, _old.c.id == _reservations.c.id)
    .where(_reservations.c.quantity > bindparam("new_quantity"))
    .values(quantity=bindparam("new_quantity"))
    .returning((_old.c.quantity - bindparam("new_quantity")).label("given"))
)
_RELEASE_LINE = (
    update(_reservations)
    .where(_this_live_reservation)
    .values(released_at=func.now())
    .returning(_reservations.c.quantity.label("given"))
)
