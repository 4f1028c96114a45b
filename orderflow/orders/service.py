"""Order use cases of the intake API: place, read, list. Moves with consequences (cancel,
ship, deliver) are the pipeline side's: ``fulfilment.moves``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import ForeignKeyViolation
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow import idempotency
from orderflow.catalogue.service import products_by_id
from orderflow.errors import Forbidden, InsufficientStock, NotFound, Unprocessable
from orderflow.event_types import OrderEventType
from orderflow.events import recorder as business_events
from orderflow.ids import new_id
from orderflow.models import Order, OrderEvent, OrderLine, Product, User
from orderflow.money import Money, is_currency
from orderflow.orders.repository import CUSTOMER_FK, OrderRepository
from orderflow.orders.state import ActorRole
from orderflow.pagination import Page
from orderflow.statuses import OrderStatus, PaymentStatus
from orderflow.steps import Step, step_message


@dataclass(frozen=True)
class LineRequest:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    items: list[LineRequest]
    shipping_address: dict[str, Any]
    payment_method: str


@dataclass(frozen=True)
class Placement:
    response: idempotency.StoredResponse
    replayed: bool


@dataclass(frozen=True)
class Viewer:
    """Who is looking: admins see every order, everyone else only their own."""

    user_id: str
    is_admin: bool

    @property
    def role(self) -> ActorRole:
        return ActorRole.ADMIN if self.is_admin else ActorRole.OWNER


@dataclass(frozen=True)
class OrderFilter:
    customer_id: str | None = None
    status: OrderStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class IdempotentRequest:
    """An ``Idempotency-Key``, scoped to whoever sent it (an admin ordering for a customer
    has keys of their own)."""

    caller_id: str
    key: str
    fingerprint: str
    ttl_hours: int


def place_order_idempotently(
    session: Session,
    viewer: Viewer,
    command: PlaceOrder,
    request: IdempotentRequest | None,
    render: Callable[[Order], idempotency.StoredResponse],
) -> Placement:
    """Place the order, or replay the answer already given to the same Idempotency-Key.
    Only an admin places an order for another customer."""
    if command.customer_id != viewer.user_id and not viewer.is_admin:
        raise Forbidden("only admins may place an order for another customer")
    if request is not None:
        stored = idempotency.claim(
            session, request.caller_id, request.key, request.fingerprint, request.ttl_hours
        )
        if stored is not None:
            return Placement(stored, replayed=True)
    order = place_order(session, command)
    response = render(order)
    if request is not None:
        idempotency.remember(session, request.caller_id, request.key, request.fingerprint, response)
    return Placement(response, replayed=False)


def place_order(session: Session, command: PlaceOrder) -> Order:
    """Price the order from the catalogue and store it with its lines, its event and the
    outbox message that starts its fulfilment, all in the caller's transaction. The intake's
    hot path, so the four go to PostgreSQL as one statement (``_PLACE_ORDER``), and the
    answer is an ``Order`` built from what was written, not one loaded back. The customer is
    checked by the order's foreign key: no read of the user, who almost always is the caller
    just authenticated."""
    products = _load_products(session, [line.product_id for line in command.items])
    currency = _single_currency(products.values())
    lines = _priced_lines(command.items, products)
    total = sum((Money(line.subtotal_amount, currency) for line in lines), Money.zero(currency))
    order_id = new_id("ord")
    values = {
        "id": order_id,
        "customer_id": command.customer_id,
        "status": OrderStatus.PENDING,
        "payment_status": PaymentStatus.UNPAID,
        "currency": currency,
        "subtotal_amount": total.amount,
        "total_amount": total.amount,
        "shipping_address": command.shipping_address,
        "payment_method": command.payment_method,
    }
    orders = OrderRepository(session)
    event = orders.new_event(
        order_id,
        OrderEventType.ORDER_PLACED,
        command.customer_id,
        {"total": total.amount, "currency": currency, "lines": len(lines)},
    )
    try:
        stamps = orders.place(values, lines, event, step_message(Step.RESERVE_STOCK, order_id))
    except IntegrityError as error:
        if isinstance(error.orig, ForeignKeyViolation) and (
            error.orig.diag.constraint_name == CUSTOMER_FK
        ):
            raise NotFound(f"customer {command.customer_id} does not exist") from None
        raise
    order = Order(**values, created_at=stamps.created_at, updated_at=stamps.updated_at, lines=lines)
    business_events.know_order(session, order)  # order.placed need not read it back
    return order


def _priced_lines(items: list[LineRequest], products: dict[str, Product]) -> list[OrderLine]:
    """The order's lines at today's catalogue prices; refuses a line the stock cannot cover."""
    lines = []
    for line_no, requested in enumerate(items, start=1):
        product = products[requested.product_id]
        if product.stock < requested.quantity:
            raise InsufficientStock(
                f"product {product.id} has {product.stock} in stock, "
                f"{requested.quantity} requested",
                product_id=product.id,
            )
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


def get_order(session: Session, order_id: str, viewer: Viewer) -> Order:
    """The order if the viewer may see it; someone else's order does not exist for them."""
    order = OrderRepository(session).get(order_id)
    if order is None or not (viewer.is_admin or order.customer_id == viewer.user_id):
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


def _load_products(session: Session, product_ids: list[str]) -> dict[str, Product]:
    if len(set(product_ids)) != len(product_ids):
        raise Unprocessable(
            "each product may appear on one line only; raise the quantity instead",
            errors=[{"field": "items", "message": "duplicate product_id"}],
        )
    found = products_by_id(session, product_ids)
    for product_id in product_ids:
        product = found.get(product_id)
        if product is None or not product.active:
            raise NotFound(
                f"product {product_id} does not exist or is no longer sold", product_id=product_id
            )
    return found


def _single_currency(products: Any) -> str:
    currencies = {product.currency for product in products}
    if len(currencies) != 1:
        raise Unprocessable(
            "all products of one order must be priced in the same currency",
            errors=[{"field": "items", "message": "mixed currencies"}],
        )
    currency = currencies.pop()
    if not is_currency(currency):  # a product stored before currencies were checked
        raise Unprocessable(
            f"these products are priced in {currency!r}, not an ISO 4217 currency; "
            "an admin must correct their currency first",
            errors=[{"field": "items", "message": "unknown currency"}],
        )
    return currency


def list_customer_orders(
    session: Session, viewer: Viewer, customer_id: str, limit: int, offset: int
) -> Page[Order]:
    """A customer's orders: that customer or an admin; anyone else is told it does not exist."""
    if not viewer.is_admin and customer_id != viewer.user_id:
        raise NotFound(f"customer {customer_id} does not exist")
    if viewer.is_admin and session.get(User, customer_id) is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return list_orders(session, viewer, OrderFilter(customer_id=customer_id), limit, offset)
