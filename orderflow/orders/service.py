"""Order use cases of the intake API: place, read, list. Moves with consequences (cancel,
ship, deliver) are the pipeline side's: ``fulfilment.moves``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import ForeignKeyViolation, UniqueViolation
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow import idempotency
from orderflow.carts.repository import CartRepository
from orderflow.carts.service import ensure_open
from orderflow.catalogue.service import check_for_sale, products_for_sale, single_currency
from orderflow.errors import (
    CartCompleted,
    Forbidden,
    InsufficientStock,
    NotFound,
    PriceChanged,
    Unprocessable,
)
from orderflow.event_types import OrderEventType
from orderflow.events import recorder as business_events
from orderflow.ids import new_id
from orderflow.models import Order, OrderEvent, OrderLine, Product, User
from orderflow.money import Money
from orderflow.orders.repository import CUSTOMER_FK, ONE_ORDER_PER_CART, OrderRepository
from orderflow.orders.state import ActorRole
from orderflow.pagination import Page
from orderflow.statuses import OrderStatus, PaymentStatus, ShippingStatus
from orderflow.steps import Step, step_message


@dataclass(frozen=True)
class LineRequest:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class PlaceOrder:
    """An order of ``items``, or of the lines of the customer's cart ``cart_id`` (then
    ``items`` is empty), placed only if it costs ``expected_total`` when that is given."""

    customer_id: str
    items: list[LineRequest]
    shipping_address: dict[str, Any]
    payment_method: str
    cart_id: str | None = None
    expected_total: int | None = None


@dataclass(frozen=True)
class Viewer:
    """Who is looking: admins see every order, everyone else only their own."""

    user_id: str
    is_admin: bool

    @property
    def role(self) -> ActorRole:
        return ActorRole.ADMIN if self.is_admin else ActorRole.OWNER

    def may_see(self, order: Order | None) -> bool:
        """The order, and what hangs off it (shipments, returns), is theirs to see."""
        return order is not None and (self.is_admin or order.customer_id == self.user_id)


@dataclass(frozen=True)
class OrderFilter:
    customer_id: str | None = None
    status: OrderStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def place_order_idempotently(
    session: Session,
    viewer: Viewer,
    command: PlaceOrder,
    request: idempotency.IdempotentRequest | None,
    render: Callable[[Order], idempotency.StoredResponse],
) -> idempotency.Answer:
    """Place the order, or replay the answer already given to the same Idempotency-Key.
    Only an admin places an order for another customer."""
    if command.customer_id != viewer.user_id and not viewer.is_admin:
        raise Forbidden("only admins may place an order for another customer")
    return idempotency.once(session, request, lambda: render(place_order(session, command)))


def place_order(session: Session, command: PlaceOrder) -> Order:
    """Price the order from the catalogue and store it with its lines, its event and the
    outbox message that starts its fulfilment, all in the caller's transaction. The intake's
    hot path, so the four go to PostgreSQL as one statement (``_PLACE_ORDER``), and the
    answer is an ``Order`` built from what was written, not one loaded back. The customer is
    checked by the order's foreign key: no read of the user, who almost always is the caller
    just authenticated.

    From a cart (``command.cart_id``), the lines are the cart's, read with their products in
    the one statement that locks the cart's row (instead of the products' read), and the
    placement statement also marks the cart ``completed`` (``_PLACE_FROM_CART``): the same
    number of statements as an order from a body. The lock queues concurrent checkouts of
    one cart; each after the first finds it completed (409 ``cart-completed`` naming the
    order), and the unique ``orders.cart_id`` would refuse a second order regardless."""
    cart = None
    if command.cart_id is None:
        items = command.items
        products = products_for_sale(session, [line.product_id for line in items])
    else:
        cart = _cart_lines(session, command.cart_id, command.customer_id)
        items, products = cart.items, cart.products
    currency = single_currency(products.values())
    lines = _priced_lines(items, products)
    total = sum((Money(line.subtotal_amount, currency) for line in lines), Money.zero(currency))
    if cart is not None:
        _check_expected(command.expected_total, cart, total, lines)
    _check_stock(lines, products)
    order_id = new_id("ord")
    values = {
        "id": order_id,
        "customer_id": command.customer_id,
        "status": OrderStatus.PENDING,
        "payment_status": PaymentStatus.UNPAID,
        "shipping_status": ShippingStatus.NOT_SHIPPED,
        "currency": currency,
        "subtotal_amount": total.amount,
        "total_amount": total.amount,
        "shipping_address": command.shipping_address,
        "payment_method": command.payment_method,
        "cart_id": command.cart_id,
    }
    orders = OrderRepository(session)
    event = orders.new_event(
        order_id,
        OrderEventType.ORDER_PLACED,
        command.customer_id,
        {"total": total.amount, "currency": currency, "lines": len(lines),
         "cart_id": command.cart_id},
    )  # fmt: skip
    try:
        stamps = orders.place(values, lines, event, step_message(Step.RESERVE_STOCK, order_id))
    except IntegrityError as error:
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
        if isinstance(error.orig, ForeignKeyViolation) and constraint == CUSTOMER_FK:
            raise NotFound(f"customer {command.customer_id} does not exist") from None
        if isinstance(error.orig, UniqueViolation) and constraint == ONE_ORDER_PER_CART:
            raise CartCompleted(
                f"cart {command.cart_id} has already become an order", cart_id=command.cart_id
            ) from None
        raise
    order = Order(
        **values,
        **_NOTHING_CAPTURED,
        created_at=stamps.created_at,
        updated_at=stamps.updated_at,
        lines=lines,
    )
    business_events.know_order(session, order)  # order.placed need not read it back
    return order


#: A new order's money counters, as the columns' defaults write them.
_NOTHING_CAPTURED = {"captured_amount": 0, "refunded_amount": 0, "refund_pending_amount": 0,
                     "reduced_amount": 0}  # fmt: skip


@dataclass(frozen=True)
class _CartLines:
    items: list[LineRequest]
    products: dict[str, Product]
    #: The price each product was put in the cart at.
    put_prices: dict[str, int]
    #: The cart's currency if it was given at its creation.
    currency: str | None


def _cart_lines(session: Session, cart_id: str, customer_id: str) -> _CartLines:
    """The cart's items (its row locked until the order commits) and their products as sold
    now. Someone else's cart does not exist; an empty one is 422."""
    state = CartRepository(session).lock(cart_id, customer_id)
    if state is None:
        raise NotFound(f"cart {cart_id} does not exist", cart_id=cart_id)
    ensure_open(state)
    if not state.items:
        raise Unprocessable(
            f"cart {cart_id} is empty; put products in it first",
            errors=[{"field": "cart_id", "message": "empty cart"}],
        )
    found = {row.product_id: row.product for row in state.items}
    check_for_sale(found, found)
    return _CartLines(
        items=[LineRequest(row.product_id, row.quantity) for row in state.items],
        products={product.id: product for product in found.values() if product is not None},
        put_prices={row.product_id: row.put_price_amount for row in state.items},
        currency=state.cart.currency,
    )


def _check_expected(
    expected_total: int | None, cart: _CartLines, total: Money, lines: list[OrderLine]
) -> None:
    """``expected_total`` given and not what the cart costs now, or the cart's products now
    priced in another currency than the cart's: 409 ``price-changed`` listing each line's
    price when put in the cart and now. Nothing is written."""
    moved_currency = cart.currency is not None and cart.currency != total.currency
    if not moved_currency and expected_total in (None, total.amount):
        return
    raise PriceChanged(
        f"the cart costs {total.amount} {total.currency} now"
        + ("" if expected_total is None else f", not {expected_total}")
        + "; read the cart again and confirm its total",
        expected_total=expected_total,
        current_total=total.amount,
        currency=total.currency,
        lines=[
            {"product_id": line.product_id, "quantity": line.quantity,
             "expected_unit_price": cart.put_prices[line.product_id],
             "current_unit_price": line.unit_price_amount}
            for line in lines
        ],
    )  # fmt: skip


def _priced_lines(items: list[LineRequest], products: dict[str, Product]) -> list[OrderLine]:
    """The order's lines at today's catalogue prices."""
    lines = []
    for line_no, requested in enumerate(items, start=1):
        product = products[requested.product_id]
        lines.append(
            OrderLine(
                line_no=line_no,
                product_id=product.id,
                sku=product.sku,
                name=product.name,
                quantity=requested.quantity,
                unit_price_amount=product.price_amount,
                subtotal_amount=(product.price * requested.quantity).amount,
            )
        )
    return lines


def _check_stock(lines: list[OrderLine], products: dict[str, Product]) -> None:
    """Refuses a line the stock cannot cover now (the pipeline's reservation decides)."""
    for line in lines:
        product = products[line.product_id]
        if product.stock < line.quantity:
            raise InsufficientStock(
                f"product {product.id} has {product.stock} in stock, {line.quantity} requested",
                product_id=product.id,
            )


def get_order(session: Session, order_id: str, viewer: Viewer) -> Order:
    """The order if the viewer may see it; someone else's order does not exist for them."""
    order = OrderRepository(session).get(order_id)
    if order is None or not viewer.may_see(order):
        raise NotFound(f"order {order_id} does not exist", order_id=order_id)
    return order


def list_orders(
    session: Session, viewer: Viewer, filters: OrderFilter, limit: int, offset: int
) -> Page[Order]:
    """Newest first; a client sees only their own orders whatever the filters say."""
    customer_id = filters.customer_id
    if not viewer.is_admin:
        if customer_id is not None and customer_id != viewer.user_id:
            return Page([], 0, limit, offset)
        customer_id = viewer.user_id
    return OrderRepository(session).page(
        customer_id=customer_id,
        status=filters.status,
        created_after=filters.created_after,
        created_before=filters.created_before,
        limit=limit,
        offset=offset,
    )


def list_events(
    session: Session, order_id: str, viewer: Viewer, limit: int, offset: int
) -> Page[OrderEvent]:
    """The order's timeline, oldest first."""
    get_order(session, order_id, viewer)
    return OrderRepository(session).events_page(order_id, limit, offset)


def list_customer_orders(
    session: Session, viewer: Viewer, customer_id: str, limit: int, offset: int
) -> Page[Order]:
    """A customer's orders: that customer or an admin; anyone else is told it does not exist."""
    if not viewer.is_admin and customer_id != viewer.user_id:
        raise NotFound(f"customer {customer_id} does not exist")
    if viewer.is_admin and session.get(User, customer_id) is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return list_orders(session, viewer, OrderFilter(customer_id=customer_id), limit, offset)
