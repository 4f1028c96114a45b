"""Every statement on an order and what is written with it: the order row and its lines, its
payments (the one charge and the one refund), its timeline (``order_events``) and the outbox
messages of the placement. Services in ``orders/`` and ``fulfilment/`` call these methods and
build no SQL on those tables themselves.

One idiom writes the order row: :meth:`OrderRepository.update` (columns by primary key) and
:meth:`OrderRepository.move_status` (the same UPDATE, guarded by the status it leaves: the
compare-and-set). Both stamp ``updated_at`` and put the written values on the loaded object.

Statements are built once, at import, and run with parameters: SQLAlchemy compiles and keys a
statement object for its cache only once, and a Core statement on a table runs at about half
the cost of the same statement on the mapped class (the ORM's bulk layer). The intake and the
steps run them for every order (``bench.anatomy`` counts them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    ScalarSelect,
    Table,
    Update,
    and_,
    bindparam,
    case,
    column,
    exists,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from orderflow import metrics, outbox
from orderflow.carts.repository import complete_cart
from orderflow.errors import CartCompleted, NotFound
from orderflow.event_types import OrderEventType
from orderflow.events import recorder as business_events
from orderflow.events.types import SubjectType, fact_of
from orderflow.ids import new_id
from orderflow.models import (
    Base,
    EmailRecord,
    Invoice,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    StockReservation,
    User,
    parameters_for,
    table_of,
    with_prefix,
)
from orderflow.money import Money
from orderflow.pagination import Page, paginate
from orderflow.statuses import OrderStatus, PaymentKind, PaymentRecordStatus, RefundStatus

#: The actor of what the pipeline does on its own.
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Stamps:
    """What PostgreSQL set when the order was written."""

    created_at: datetime
    updated_at: datetime


class OrderRepository:
    """The order aggregate's persistence, in the caller's transaction (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- the order row ----------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        return self.session.get(Order, order_id)

    def lock_for_update(self, order_id: str) -> Order:
        """The order row, locked and freshly read; its lines load only if the caller reads
        them (most steps never do)."""
        order = self.session.scalar(_LOCK_ORDER, {"order_id": order_id})
        if order is None:
            raise NotFound(f"order {order_id} does not exist", order_id=order_id)
        return order

    def move_status(self, order: Order, target: OrderStatus, **changes: Any) -> bool:
        """Compare-and-set: move ``order`` to ``target`` (with further column ``changes``)
        only if its row still has the status the object has. False if someone moved it."""
        return self._write(
            order, _MOVE_ORDER, {"moving_from": order.status, "status": target, **changes}
        )

    def update(self, order: Order, **changes: Any) -> None:
        """Write ``changes`` to the (locked) order row."""
        if not changes:
            raise ValueError("nothing to update; use touch() to stamp updated_at only")
        self._write(order, _update_by_key(_orders), changes)

    def touch(self, order: Order) -> None:
        """Stamp ``updated_at`` only: the sweeper waits a whole stall period from it."""
        self._write(order, _update_by_key(_orders), {})

    def touch_all(self, order_ids: Collection[str]) -> None:
        if order_ids:
            self.session.execute(_TOUCH_ORDERS, {"ids": list(order_ids)})

    def exists(self, order_id: str) -> bool:
        return self.session.scalar(_ORDER_EXISTS, {"order_id": order_id}) is not None

    def with_customer(self, order_id: str) -> tuple[Order, User] | None:
        """The order and its customer, in one read (the e-mail step)."""
        found = self.session.execute(_ORDER_AND_CUSTOMER, {"order_id": order_id}).first()
        return None if found is None else (found[0], found[1])

    def page(
        self,
        *,
        customer_id: str | None,
        status: OrderStatus | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        offset: int,
    ) -> Page[Order]:
        """Newest first, with the filters that are given."""
        query = select(Order)
        if customer_id is not None:
            query = query.where(Order.customer_id == customer_id)
        if status is not None:
            query = query.where(Order.status == status)
        if created_after is not None:
            query = query.where(Order.created_at >= created_after)
        if created_before is not None:
            query = query.where(Order.created_at < created_before)
        return paginate(
            self.session, query.order_by(Order.created_at.desc(), Order.id.desc()), limit, offset
        )

    def place(
        self,
        values: dict[str, Any],
        lines: Sequence[OrderLine],
        event: dict[str, Any],
        message: dict[str, Any],
    ) -> Stamps:
        """Write a new order, its lines, its first event and the outbox message that starts
        its fulfilment: one statement (``_PLACE_ORDER``), one round trip instead of four.
        An order from a cart (``values["cart_id"]``) marks the cart, locked by the caller,
        ``completed`` in the same statement (``_PLACE_FROM_CART``). Raises
        ``IntegrityError`` if the customer does not exist (``CUSTOMER_FK``) or the cart
        already has an order (``ONE_ORDER_PER_CART``)."""
        parameters = {
            **with_prefix("order_", values),
            "lines": [{name: getattr(line, name) for name in _LINE_COLUMNS} for line in lines],
            **with_prefix("event_", event),
            **with_prefix("message_", message),
        }
        cart_id = values.get("cart_id")
        if cart_id is None:
            placed = self.session.execute(_PLACE_ORDER, parameters).one()
        else:
            parameters |= {"cart_id": cart_id, "cart_order_id": values["id"]}
            placed = self.session.execute(_PLACE_FROM_CART, parameters).one()
            if placed.carts_completed != 1:  # the caller's lock makes this impossible
                raise CartCompleted(f"cart {cart_id} is no longer open", cart_id=cart_id)
        return Stamps(placed.created_at, placed.updated_at)

    # -- the timeline -----------------------------------------------------------------------

    def record_event(
        self,
        order_id: str,
        type_: OrderEventType,
        actor: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append an event now (one INSERT, no object to flush later)."""
        self.session.execute(_INSERT_EVENT, self.new_event(order_id, type_, actor, data))

    def record_update(self, order_id: str, actor: str, changed: Sequence[str]) -> None:
        """The order as ``GET`` shows it changed (``changed`` names the fields) with no move
        of its status: an ``order_updated`` entry, ``order.updated`` in the feed and to the
        webhooks. Call it after the change, in its transaction, wherever an order changes
        that way (a refund, its shipping status, its address or lines). Nothing is written
        when the transaction has an event about the order already: every event shows the
        order as it commits, so that one shows this change too."""
        if business_events.has_pending(self.session, SubjectType.ORDER, order_id):
            return
        self.record_event(
            order_id, OrderEventType.ORDER_UPDATED, actor, {"changed": sorted(set(changed))}
        )

    def new_event(
        self,
        order_id: str,
        type_: OrderEventType,
        actor: str,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The row of an event written in this transaction (by ``record_event``, or by
        ``place`` within its statement); counted in the metrics when it commits."""
        data = data or {}
        metrics.note_order_event(self.session, order_id, type_, actor, data)
        event_id = new_id("evt")
        # The one hook point of the business events (issue 15): an entry that is a business
        # fact is written to the feed at commit, under the same id, so the timeline and the
        # feed cannot disagree.
        fact = fact_of(order_id, type_, data)
        if fact is not None:
            business_events.note(self.session, event_id, fact)
        return {"id": event_id, "order_id": order_id, "type": type_, "actor": actor,
                "data": data}  # fmt: skip

    def events_page(self, order_id: str, limit: int, offset: int) -> Page[OrderEvent]:
        query = (
            select(OrderEvent)
            .where(OrderEvent.order_id == order_id)
            .order_by(OrderEvent.created_at, OrderEvent.id)
        )
        return paginate(self.session, query, limit, offset)

    # -- payments ---------------------------------------------------------------------------

    def charge_of(self, order_id: str, *, lock: bool = False) -> Payment | None:
        return self.session.scalar(_LOCK_CHARGE if lock else _SELECT_CHARGE, {"order_id": order_id})

    def start_charge(self, order_id: str, amount: Money, attempt: int) -> None:
        """The charge row, written before the provider is called (``processing``)."""
        self.session.execute(
            _INSERT_PAYMENT,
            {"order_id": order_id, "kind": PaymentKind.CHARGE,
             "status": PaymentRecordStatus.PROCESSING, "attempt": attempt,
             "amount": amount.amount, "currency": amount.currency},
        )  # fmt: skip

    # -- refunds ----------------------------------------------------------------------------

    def add_refund(self, order_id: str, amount: Money, reason: str) -> Refund:
        """A refund row, ``pending``, written before the provider is asked."""
        refund = Refund(
            id=new_id("ref"),
            order_id=order_id,
            amount=amount.amount,
            currency=amount.currency,
            status=RefundStatus.PENDING,
            reason=reason,
        )
        self.session.add(refund)
        self.session.flush()
        return refund

    def refund(self, refund_id: str, *, lock: bool = False) -> Refund | None:
        return self.session.scalar(
            _LOCK_REFUND if lock else _SELECT_REFUND, {"refund_id": refund_id}
        )

    def refund_by_provider_id(self, provider_id: str) -> Refund | None:
        return self.session.scalar(_REFUND_BY_PROVIDER_ID, {"provider_id": provider_id})

    def refunds_of(self, order_id: str) -> list[Refund]:
        return list(self.session.scalars(_REFUNDS_OF, {"order_id": order_id}))

    def update_refund(self, refund: Refund, **changes: Any) -> None:
        self._write(refund, _update_by_key(_refunds), changes)

    def stalled_refunds(self, cutoff: datetime) -> list[tuple[str, str]]:
        """(order id, refund id) of refunds pending since before ``cutoff``, oldest first."""
        rows = self.session.execute(_STALLED_REFUNDS, {"cutoff": cutoff}).all()
        return [(str(order_id), str(refund_id)) for order_id, refund_id in rows]

    def update_payment(self, payment: Payment, **changes: Any) -> None:
        self._write(payment, _update_by_key(_payments), changes)

    def unpark_charge(self, order_id: str) -> None:
        """A charge parked as ``unavailable`` may be asked for again (same attempt and key)."""
        self.session.execute(_UNPARK_CHARGE, {"parked_order_id": order_id})

    def order_id_for_intent(self, intent_id: str) -> str | None:
        """The order whose charge recorded this PaymentIntent, if any."""
        found = self.session.scalar(_ORDER_OF_INTENT, {"intent_id": intent_id})
        return None if found is None else str(found)

    # -- what the sweeper and the operator look for -----------------------------------------

    def stalled_ids(
        self,
        condition: ColumnElement[bool],
        cutoff: datetime | None,
        *,
        since_last_event: bool = False,
    ) -> list[str]:
        """Ids of orders matching one of the conditions below, untouched since ``cutoff``
        (or, with ``since_last_event``, that have not moved since: see ``quiet_since``),
        oldest first, at most one sweep batch."""
        query = select(Order.id).where(condition)
        if cutoff is not None:
            query = query.where(
                quiet_since(cutoff) if since_last_event else Order.updated_at < cutoff
            )
        return list(self.session.scalars(query.order_by(Order.updated_at).limit(SWEEP_BATCH)))

    def parked(self, reasons: Collection[str]) -> list[tuple[str, str]]:
        """Pending orders parked on one of ``reasons``: (id, reason), oldest first."""
        rows = self.session.execute(
            select(Order.id, Order.failure_reason)
            .where(Order.status == OrderStatus.PENDING, Order.failure_reason.in_(reasons))
            .order_by(Order.updated_at)
            .limit(SWEEP_BATCH)
        ).all()
        return [(str(order_id), str(reason)) for order_id, reason in rows]

    def stuck_counts(self, older_than: float, awaiting: str, stalled: str) -> dict[str, int]:
        """Pending orders that have not moved for longer than ``older_than`` seconds (see
        ``quiet_since``), by reason: their parking reason, ``awaiting`` (a charge waits for
        the customer) or ``stalled``."""
        reason = func.coalesce(
            Order.failure_reason,
            case((charge_in(PaymentRecordStatus.REQUIRES_ACTION), literal(awaiting)),
                 else_=literal(stalled)),
        )  # fmt: skip
        cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than)
        rows = self.session.execute(
            select(reason, func.count())
            .where(Order.status == OrderStatus.PENDING, quiet_since(cutoff))
            .group_by(reason)
        ).all()
        return {str(name): int(count) for name, count in rows}

    # -- the one way a loaded row is written ------------------------------------------------

    def _write(self, row: Base, statement: Update, changes: dict[str, Any]) -> bool:
        key = _key_of(self.session, row)
        written = self.session.execute(statement, {"row_key": key, **changes}).first()
        if written is None:
            return False
        for name, value in {**changes, "updated_at": written.updated_at}.items():
            if name != "moving_from":
                set_committed_value(row, name, value)
        return True


#: At most this many ids per sweeper query (about 40 bytes each): a sweep holds well under a
#: megabyte whatever the backlog, and the next sweep finds the rest.
SWEEP_BATCH = 500


# -- conditions the sweeper and the operator combine (on ``Order``) -------------------------


def last_event_at() -> ScalarSelect[datetime]:
    """When the order last moved: its newest event. Every step that changes an order writes
    one; a re-drive, a provider look-up that learns nothing new and the sweeper's touch of
    ``updated_at`` do not."""
    return (
        select(func.max(OrderEvent.created_at))
        .where(OrderEvent.order_id == Order.id)
        .correlate(Order)
        .scalar_subquery()
    )


def quiet_since(cutoff: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """The order has not moved since ``cutoff``: created before it, no event after it. What
    the metrics count as stuck, measured so that the sweeper, which touches ``updated_at``
    of every order it re-drives (and of every order whose payment waits for the customer,
    which it asks the provider about), cannot hide an order that stays stuck."""
    return and_(
        Order.created_at < cutoff, func.coalesce(last_event_at(), Order.created_at) < cutoff
    )


def charge_in(*statuses: PaymentRecordStatus) -> ColumnElement[bool]:
    return exists().where(
        Payment.order_id == Order.id,
        Payment.kind == PaymentKind.CHARGE,
        Payment.status.in_(statuses),
    )


def has_reservation() -> ColumnElement[bool]:
    return exists().where(StockReservation.order_id == Order.id)


def has_invoice() -> ColumnElement[bool]:
    return exists().where(Invoice.order_id == Order.id)


def email_sent(kind: str) -> ColumnElement[bool]:
    return exists().where(
        EmailRecord.order_id == Order.id, EmailRecord.kind == kind, EmailRecord.status == "sent"
    )


def status_in(statuses: Collection[OrderStatus]) -> ColumnElement[bool]:
    return Order.status.in_(statuses)


def not_parked() -> ColumnElement[bool]:
    return Order.failure_reason.is_(None)


def all_of(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(*conditions)


# -- statements, built once -----------------------------------------------------------------

_orders, _order_lines, _events = table_of(Order), table_of(OrderLine), table_of(OrderEvent)
_payments, _refunds = table_of(Payment), table_of(Refund)
CUSTOMER_FK = "orders_customer_id_fkey"
ONE_ORDER_PER_CART = "orders_one_per_cart"


def _key_of(session: Session, row: Base) -> Any:
    state = inspect(row)
    if state.identity is None:  # added in this transaction and not written yet
        session.flush()
    assert state.identity is not None
    (key,) = state.identity
    return key


@cache
def _update_by_key(table: Table) -> Update:
    (key,) = table.primary_key.columns
    return (
        update(table)
        .where(key == bindparam("row_key"))
        .values(updated_at=func.now())
        .returning(table.c.updated_at)
    )


_LOCK_ORDER = (
    select(Order)
    .where(Order.id == bindparam("order_id"))
    .with_for_update()
    .options(lazyload(Order.lines))
    .execution_options(populate_existing=True)
)
_MOVE_ORDER = _update_by_key(_orders).where(_orders.c.status == bindparam("moving_from"))
_TOUCH_ORDERS = (
    update(_orders)
    .where(_orders.c.id.in_(bindparam("ids", expanding=True)))
    .values(updated_at=func.now())
)
_ORDER_EXISTS = select(_orders.c.id).where(_orders.c.id == bindparam("order_id"))
_ORDER_AND_CUSTOMER = (
    select(Order, User)
    .join(User, User.id == Order.customer_id)
    .where(Order.id == bindparam("order_id"))
)

_EVENT_COLUMNS = ("id", "order_id", "type", "actor", "data")


def _insert_event(prefix: str = "") -> Insert:
    """Dated with the time of the change, not of the transaction's start (``now()``): a
    transaction that waited for the order's lock must not date its event before the one it
    waited on."""
    return insert(_events).values(
        **parameters_for(_events, _EVENT_COLUMNS, prefix), created_at=func.clock_timestamp()
    )


_INSERT_EVENT = _insert_event()

_ORDER_COLUMNS = ("id", "customer_id", "status", "payment_status", "shipping_status", "currency",
                  "subtotal_amount", "total_amount", "shipping_address", "payment_method",
                  "cart_id")  # fmt: skip
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
    select(bindparam("order_id", type_=_order_lines.c.order_id.type), *_line_rows.c),
)
#: The order, its lines, its event and its outbox message in one statement. Each INSERT is a
#: data-modifying CTE; PostgreSQL runs them all, and checks the lines' and the event's
#: foreign keys on the order at the statement's end.
_placed = (
    insert(_orders)
    .values(parameters_for(_orders, _ORDER_COLUMNS, "order_"))
    .returning(_orders.c.created_at, _orders.c.updated_at)
    .cte("placed")
)
_PLACE_ORDER = select(_placed).add_cte(
    _new_lines.cte("lines"),
    _insert_event("event_").cte("event"),
    outbox.insert_message("message_").cte("message"),
)
#: The same, and the cart (``cart_id``) marked ``completed`` by the order: its UPDATE is one
#: more CTE, whose count says whether the cart was still open. The cart's foreign key on the
#: order is checked at the statement's end, as the lines' are.
_completed = complete_cart("cart_").cte("cart")
_PLACE_FROM_CART = select(
    _placed, select(func.count()).select_from(_completed).scalar_subquery().label("carts_completed")
).add_cte(
    _new_lines.cte("lines"),
    _insert_event("event_").cte("event"),
    outbox.insert_message("message_").cte("message"),
)

_SELECT_CHARGE = (
    select(Payment)
    .where(Payment.order_id == bindparam("order_id"), Payment.kind == PaymentKind.CHARGE)
    .execution_options(populate_existing=True)
)
_LOCK_CHARGE = _SELECT_CHARGE.with_for_update()
_SELECT_REFUND = (
    select(Refund)
    .where(Refund.id == bindparam("refund_id"))
    .execution_options(populate_existing=True)
)
_LOCK_REFUND = _SELECT_REFUND.with_for_update()
_REFUND_BY_PROVIDER_ID = select(Refund).where(Refund.provider_id == bindparam("provider_id"))
_REFUNDS_OF = (
    select(Refund)
    .where(Refund.order_id == bindparam("order_id"))
    .order_by(Refund.created_at, Refund.id)
)
_STALLED_REFUNDS = (
    select(Refund.order_id, Refund.id)
    .where(Refund.status == RefundStatus.PENDING, Refund.updated_at < bindparam("cutoff"))
    .order_by(Refund.updated_at)
    .limit(SWEEP_BATCH)
)
_INSERT_PAYMENT = insert(_payments)
_UNPARK_CHARGE = (
    update(_payments)
    .where(
        _payments.c.order_id == bindparam("parked_order_id"),
        _payments.c.kind == PaymentKind.CHARGE,
        _payments.c.status == PaymentRecordStatus.UNAVAILABLE,
    )
    .values(status=PaymentRecordStatus.PROCESSING, updated_at=func.now())
)
_ORDER_OF_INTENT = (
    select(Order.id)
    .outerjoin(Payment, (Payment.order_id == Order.id) & (Payment.kind == PaymentKind.CHARGE))
    .where(
        or_(
            Order.payment_intent_id == bindparam("intent_id"),
            Payment.provider_id == bindparam("intent_id"),
        )
    )
    .limit(1)
)
