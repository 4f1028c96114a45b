"""Order use cases of the intake API: place, read, list, change status, cancel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import ForeignKeyViolation
from sqlalchemy import bindparam, column, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow import idempotency, outbox
from orderflow.errors import InsufficientStock, NotFound, TransitionNotAllowed, Unprocessable
from orderflow.fulfilment.reservations import release_stock
from orderflow.fulfilment.steps import Step, schedule, step_message
from orderflow.ids import new_id
from orderflow.models import Order, OrderLine, Product, User, parameters_for, table_of, with_prefix
from orderflow.money import Money
from orderflow.orders.events import insert_event, new_event
from orderflow.orders.lifecycle import lock_order, transition
from orderflow.orders.state import ActorRole, OrderStatus, PaymentStatus
from orderflow.pagination import Page, paginate


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
    command: PlaceOrder,
    request: IdempotentRequest | None,
    render: Callable[[Order], idempotency.StoredResponse],
) -> Placement:
    """Place the order, or replay the answer already given to the same Idempotency-Key."""
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
        "status": OrderStatus.PENDING.value,
        "payment_status": PaymentStatus.UNPAID.value,
        "currency": currency,
        "subtotal_amount": total.amount,
        "total_amount": total.amount,
        "shipping_address": command.shipping_address,
        "payment_method": command.payment_method,
    }
    event = new_event(
        session,
        order_id,
        "order_placed",
        command.customer_id,
        {"total": total.amount, "currency": currency, "lines": len(lines)},
    )
    parameters = {
        **with_prefix("order_", values),
        "lines": [{name: getattr(line, name) for name in _LINE_COLUMNS} for line in lines],
        **with_prefix("event_", event),
        **with_prefix("message_", step_message(Step.RESERVE_STOCK, order_id)),
    }
    try:
        created_at, updated_at = session.execute(_PLACE_ORDER, parameters).one()
    except IntegrityError as error:
        if isinstance(error.orig, ForeignKeyViolation) and (
            error.orig.diag.constraint_name == _CUSTOMER_FK
        ):
            raise NotFound(f"customer {command.customer_id} does not exist") from None
        raise
    return Order(**values, created_at=created_at, updated_at=updated_at, lines=lines)


# Built once (compiled and cache-keyed once): the statements of every order placed.
_orders, _order_lines = table_of(Order), table_of(OrderLine)
_ORDER_COLUMNS = ("id", "customer_id", "status", "payment_status", "currency", "subtotal_amount",
                  "total_amount", "shipping_address", "payment_method")  # fmt: skip
_LINE_COLUMNS = ("line_no", "product_id", "sku", "name", "quantity", "unit_price_amount",
                 "subtotal_amount")  # fmt: skip
#: The lines arrive as one JSON array (parameter ``lines``), read as rows of typed columns.
_line_rows = (
    func.jsonb_to_recordset(bindparam("lines", type_=JSONB))
    .table_valued(*(column(name, _order_lines.c[name].type) for name in _LINE_COLUMNS))
    .render_derived(name="line", with_types=True)
)
_new_lines = insert(_order_lines).from_select(
    ["order_id", *_LINE_COLUMNS],
    # ``order_id`` is the order's own ``id`` parameter (prefix ``order_``).
    select(bindparam("order_id", type_=_order_lines.c.order_id.type), *_line_rows.c),
)
#: The order, its lines, its event and its outbox message in one statement: one round trip
#: instead of four. Each INSERT is a data-modifying CTE; PostgreSQL runs them all, and
#: checks the lines' and the event's foreign keys on the order at the statement's end.
_PLACE_ORDER = select(
    insert(_orders)
    .values(parameters_for(_orders, _ORDER_COLUMNS, "order_"))
    .returning(_orders.c.created_at, _orders.c.updated_at)
    .cte("placed")
).add_cte(
    _new_lines.cte("lines"),
    insert_event("event_").cte("event"),
    outbox.insert_message("message_").cte("message"),
)
_CUSTOMER_FK = "orders_customer_id_fkey"
_SELECT_PRODUCTS = select(Product).where(Product.id.in_(bindparam("ids", expanding=True)))


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
    order = session.get(Order, order_id)
    if order is None or not (viewer.is_admin or order.customer_id == viewer.user_id):
        raise NotFound(f"order {order_id} does not exist", order_id=order_id)
    return order


def list_orders(
    session: Session, viewer: Viewer, filters: OrderFilter, limit: int, offset: int
) -> Page[Order]:
    query = select(Order)
    if not viewer.is_admin:
        query = query.where(Order.customer_id == viewer.user_id)
    if filters.customer_id is not None:
        query = query.where(Order.customer_id == filters.customer_id)
    if filters.status is not None:
        query = query.where(Order.status == filters.status.value)
    if filters.created_after is not None:
        query = query.where(Order.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Order.created_at < filters.created_before)
    return paginate(
        session, query.order_by(Order.created_at.desc(), Order.id.desc()), limit, offset
    )


def change_status(session: Session, order_id: str, target: OrderStatus, viewer: Viewer) -> Order:
    """An admin moves an order (ship, deliver, cancel) through the state machine."""
    if target is OrderStatus.CANCELLED:
        return cancel_order(session, order_id, viewer)
    get_order(session, order_id, viewer)
    order = lock_order(session, order_id)
    transition(session, order, target, role=viewer.role, actor=viewer.user_id)
    return order


def cancel_order(session: Session, order_id: str, viewer: Viewer) -> Order:
    """Cancel a pending or confirmed order: its stock goes back now, a refund follows if it was
    paid. Cancelling a cancelled order changes nothing."""
    get_order(session, order_id, viewer)
    order = lock_order(session, order_id)
    if order.status == OrderStatus.CANCELLED.value:
        return order
    if order.status not in (OrderStatus.PENDING.value, OrderStatus.CONFIRMED.value):
        raise TransitionNotAllowed(f"an order that is {order.status} can no longer be cancelled")
    release_stock(session, order.id)
    transition(
        session,
        order,
        OrderStatus.CANCELLED,
        role=viewer.role,
        actor=viewer.user_id,
        reason="cancelled_by_admin" if viewer.is_admin else "cancelled_by_customer",
    )
    if order.payment_status == PaymentStatus.PAID.value:
        schedule(session, Step.REFUND_PAYMENT, order.id)
    return order


def _load_products(session: Session, product_ids: list[str]) -> dict[str, Product]:
    if len(set(product_ids)) != len(product_ids):
        raise Unprocessable(
            "each product may appear on one line only; raise the quantity instead",
            errors=[{"field": "items", "message": "duplicate product_id"}],
        )
    found = {
        product.id: product for product in session.scalars(_SELECT_PRODUCTS, {"ids": product_ids})
    }
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
    return currencies.pop()


def list_customer_orders(
    session: Session, viewer: Viewer, customer_id: str, limit: int, offset: int
) -> Page[Order]:
    """A customer's orders: that customer or an admin; anyone else is told it does not exist."""
    if not viewer.is_admin and customer_id != viewer.user_id:
        raise NotFound(f"customer {customer_id} does not exist")
    if viewer.is_admin and session.get(User, customer_id) is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return list_orders(session, viewer, OrderFilter(customer_id=customer_id), limit, offset)
