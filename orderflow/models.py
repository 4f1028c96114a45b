"""SQLAlchemy models. The schema itself is created by the Alembic migrations only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from orderflow.event_types import OrderEventType
from orderflow.money import Money
from orderflow.statuses import (
    CartStatus,
    LabelStatus,
    OrderStatus,
    PaymentKind,
    PaymentRecordStatus,
    PaymentStatus,
    RefundStatus,
    ShipmentStatus,
    ShippingStatus,
    SmsStatus,
)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


def table_of(model: type[Base]) -> Table:
    """A model's table, for statements built once and run with parameters on hot paths:
    SQLAlchemy runs a Core statement on a table at about half the cost of the same statement
    on the mapped class, which goes through the ORM's bulk layer."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def parameters_for(
    table: Table, columns: Sequence[str], prefix: str = ""
) -> dict[str, BindParameter[Any]]:
    """Bind parameters named ``{prefix}{column}`` for ``columns`` of ``table``, to build an
    INSERT once that runs beside others in one statement (``prefix`` keeps their names apart;
    ``with_prefix`` names the values to match)."""
    return {name: bindparam(prefix + name, type_=table.c[name].type) for name in columns}


def with_prefix(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in row.items()}


def _now_column() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def _enum_column(vocabulary: type[StrEnum], length: int) -> Mapped[Any]:
    """A status or type column read and written as its enum (stored as its value, checked
    by the migration's CHECK constraint)."""
    return mapped_column(
        Enum(
            vocabulary,
            native_enum=False,
            create_constraint=False,
            length=length,
            validate_strings=True,
            values_callable=lambda members: [member.value for member in members],
        )
    )


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    #: E.164 (``+14155550123``), normalised by ``auth.phones``; texts go here when opted in.
    phone: Mapped[str | None] = mapped_column(String(16))
    sms_opt_in: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = _now_column()
    __table_args__ = (
        CheckConstraint("role IN ('client', 'admin')", name="users_role"),
        CheckConstraint(r"phone ~ '^\+[1-9][0-9]{1,14}$'", name="users_phone_e164"),
    )


class AuthSession(Base):
    """One login. Access tokens name their session, so revoking it logs them out."""

    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _now_column()
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(Base):
    """Rotating refresh tokens of one session; only a hash is stored."""

    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Product(Base):
    __tablename__ = "products"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()
    __table_args__ = (
        CheckConstraint("stock >= 0", name="products_stock_non_negative"),
        CheckConstraint("price_amount >= 0", name="products_price_non_negative"),
        CheckConstraint("currency ~ '^[a-z]{3}$'", name="products_currency_iso"),
    )

    @property
    def price(self) -> Money:
        return Money(self.price_amount, self.currency)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[OrderStatus] = _enum_column(OrderStatus, 16)
    payment_status: Mapped[PaymentStatus] = _enum_column(PaymentStatus, 24)
    #: Derived from the order's shipments, written with every change to them (under the
    #: order's lock) and with the moves that change it (confirmed, cancelled).
    shipping_status: Mapped[ShippingStatus] = _enum_column(ShippingStatus, 24)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_amount: Mapped[int] = mapped_column(BigInteger)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    shipping_address: Mapped[dict[str, Any]]
    payment_method: Mapped[str] = mapped_column(String(255))
    invoice_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    #: Money counters kept with the refunds that move them, under the order's row lock; a
    #: CHECK keeps pending + refunded within the capture (promise 9).
    captured_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    refund_pending_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: The cart the order was placed from, if any: at most one order per cart (the unique
    #: constraint). Not a foreign key: the order keeps it after the cart is purged.
    cart_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.line_no", lazy="selectin"
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','confirmed','shipped','delivered','cancelled','failed')",
            name="orders_status",
        ),
        CheckConstraint(
            "payment_status IN ('unpaid','processing','paid','failed','partially_refunded',"
            "'refunded')",
            name="orders_payment_status",
        ),
        CheckConstraint(
            "shipping_status IN ('not_shipped','processing','partially_shipped','shipped',"
            "'partially_delivered','delivered')",
            name="orders_shipping_status",
        ),
        CheckConstraint("subtotal_amount >= 0 AND total_amount >= 0", name="orders_amounts"),
        UniqueConstraint("cart_id", name="orders_one_per_cart"),
        Index("orders_customer_created", "customer_id", "created_at"),
        Index("orders_status_updated", "status", "updated_at"),
        Index("orders_created", "created_at"),
    )

    @property
    def total(self) -> Money:
        return Money(self.total_amount, self.currency)

    @property
    def subtotal(self) -> Money:
        return Money(self.subtotal_amount, self.currency)

    @property
    def refundable(self) -> Money:
        """What may still be refunded: captured, less refunds succeeded or under way."""
        left = self.captured_amount - self.refunded_amount - self.refund_pending_amount
        return Money(left, self.currency)


class OrderLine(Base):
    """A line with the product's sku, name and price snapshotted at placement."""

    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_amount: Mapped[int] = mapped_column(BigInteger)
    subtotal_amount: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="lines")

    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="order_lines_one_per_product"),
        UniqueConstraint("order_id", "line_no", name="order_lines_line_no"),
        CheckConstraint("quantity BETWEEN 1 AND 1000", name="order_lines_quantity"),
        CheckConstraint(
            "subtotal_amount = unit_price_amount * quantity", name="order_lines_subtotal"
        ),
    )


class Cart(Base):
    """A customer's shopping cart: products and quantities, priced live from the catalogue
    when read; it holds no stock. ``version`` counts its changes."""

    __tablename__ = "carts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[CartStatus] = _enum_column(CartStatus, 16)
    #: As asked for at creation; unset, the cart is in the currency of its products.
    currency: Mapped[str | None] = mapped_column(String(3))
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime]
    __table_args__ = (
        CheckConstraint("status IN ('open', 'completed', 'expired')", name="carts_status"),
        CheckConstraint(
            "(status = 'completed') = (order_id IS NOT NULL)", name="carts_order_when_completed"
        ),
        CheckConstraint("currency ~ '^[a-z]{3}$'", name="carts_currency_iso"),
        Index("carts_customer", "customer_id"),
        Index("carts_open_expiry", "expires_at", postgresql_where="status = 'open'"),
        Index("carts_closed_updated", "updated_at", postgresql_where="status <> 'open'"),
    )


class CartItem(Base):
    """One product of a cart. ``unit_price_amount`` is the price when the item was last put
    in the cart: what a ``price-changed`` answer compares today's price with."""

    __tablename__ = "cart_items"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_amount: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = _now_column()
    __table_args__ = (
        UniqueConstraint("cart_id", "product_id", name="cart_items_one_per_product"),
        CheckConstraint("quantity BETWEEN 1 AND 1000", name="cart_items_quantity"),
    )


class OrderEvent(Base):
    """Append-only timeline of an order; a trigger refuses UPDATE and DELETE."""

    __tablename__ = "order_events"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    type: Mapped[OrderEventType] = _enum_column(OrderEventType, 64)
    data: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_column()
    __table_args__ = (Index("order_events_order", "order_id", "created_at", "id"),)


class OutboxMessage(Base):
    """Work committed with the change that caused it; the relay moves it onto the broker."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = _now_column()
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    __table_args__ = (Index("outbox_pending", "id", postgresql_where="dispatched_at IS NULL"),)


class IdempotencyKey(Base):
    """The first successful answer to a client's ``Idempotency-Key``, kept for replay."""

    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]]
    response_location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="idempotency_keys_caller_key"),
        Index("idempotency_keys_created", "created_at"),
    )


class StockReservation(Base):
    """Stock taken for one line of an order; ``released_at`` makes the give-back happen once."""

    __tablename__ = "stock_reservations"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now_column()
    released_at: Mapped[datetime | None]
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="stock_reservations_one_per_line"),
        CheckConstraint("quantity > 0", name="stock_reservations_quantity"),
    )


class Payment(Base):
    """The order's one charge or one refund at the provider (``kind``), unique per order."""

    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[PaymentKind] = _enum_column(PaymentKind, 8)
    status: Mapped[PaymentRecordStatus] = _enum_column(PaymentRecordStatus, 16)
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    provider_id: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    decline_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()
    __table_args__ = (
        UniqueConstraint("order_id", "kind", name="payments_one_per_kind"),
        CheckConstraint("kind IN ('charge', 'refund')", name="payments_kind"),
        CheckConstraint(
            "status IN ('processing','succeeded','declined','requires_action','unavailable')",
            name="payments_status",
        ),
        CheckConstraint("amount >= 0", name="payments_amount"),
    )


class Refund(Base):
    """Money given back to the customer, all or part of the capture (``ref_…``)."""

    __tablename__ = "refunds"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RefundStatus] = _enum_column(RefundStatus, 16)
    reason: Mapped[str] = mapped_column(String(500), server_default="")
    provider_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


class InvoiceCounter(Base):
    """Last invoice number issued per year; its row lock makes numbers gapless."""

    __tablename__ = "invoice_counters"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)


class Invoice(Base):
    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = _now_column()
    __table_args__ = (UniqueConstraint("year", "sequence", name="invoices_year_sequence"),)


class EmailRecord(Base):
    """One e-mail of each kind per order, whatever retries happen."""

    __tablename__ = "emails"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(320))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = _now_column()
    #: Set while one worker is sending; a claim older than the lease was abandoned.
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    __table_args__ = (
        UniqueConstraint("order_id", "kind", name="emails_one_per_kind"),
        CheckConstraint("status IN ('sending', 'sent')", name="emails_status"),
    )


class SmsRecord(Base):
    """One text message of each kind per order: written ``pending`` when the order makes the
    move that owes it (the customer opted in and has a phone), claimed by the step that sends
    it (``claimed_at``), then ``sent``, ``failed`` (refused for good) or ``skipped`` (the
    customer opted out or removed the phone before it went)."""

    __tablename__ = "sms_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[SmsStatus] = _enum_column(SmsStatus, 8)
    recipient: Mapped[str] = mapped_column(String(16))
    #: The text as composed at the first attempt; every later attempt sends (and looks up)
    #: exactly this, to ``recipient`` as it was then.
    body: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    #: Sends begun; past the first, the provider is asked whether an earlier one arrived.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    #: Set while one worker is sending; a claim older than the lease was abandoned.
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()
    __table_args__ = (
        UniqueConstraint("order_id", "kind", name="sms_one_per_kind"),
        CheckConstraint("kind IN ('shipped','delivered')", name="sms_messages_kind"),
        CheckConstraint(
            "status IN ('pending','sent','failed','skipped')", name="sms_messages_status"
        ),
        Index("sms_messages_owed", "updated_at", postgresql_where="status = 'pending'"),
    )


class WebhookEvent(Base):
    """Provider event ids already handled: a duplicate delivery is acknowledged and ignored."""

    __tablename__ = "webhook_events"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = _now_column()


_SHIPMENT_STATUSES = ", ".join(f"'{status.value}'" for status in ShipmentStatus)


class Shipment(Base):
    """Goods of one order leaving in one parcel. Its lines count against the order's from
    its creation until it is cancelled."""

    __tablename__ = "shipments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    status: Mapped[ShipmentStatus] = _enum_column(ShipmentStatus, 24)
    #: ``occurred_at`` of the tracking update that set ``status``; None while no update has
    #: (a tracking update of any date may then move it).
    status_at: Mapped[datetime | None]
    carrier: Mapped[str | None] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128), index=True)
    tracking_url: Mapped[str | None] = mapped_column(Text)
    label_url: Mapped[str | None] = mapped_column(Text)
    label_status: Mapped[LabelStatus] = _enum_column(LabelStatus, 16)
    #: The shipping provider's shipment and chosen rate, kept before the label is bought, so
    #: a purchase retried after a crash looks up the label bought for that rate.
    provider_shipment_id: Mapped[str | None] = mapped_column(String(255))
    provider_rate_id: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()

    lines: Mapped[list[ShipmentLine]] = relationship(
        order_by="ShipmentLine.id", lazy="selectin", back_populates="shipment"
    )
    events: Mapped[list[ShipmentEvent]] = relationship(
        order_by="(ShipmentEvent.occurred_at, ShipmentEvent.id)",
        lazy="selectin",
        back_populates="shipment",
    )

    __table_args__ = (
        CheckConstraint(f"status IN ({_SHIPMENT_STATUSES})", name="shipments_status"),
        CheckConstraint(
            "label_status IN ('none','pending','purchased','failed','voided')",
            name="shipments_label_status",
        ),
    )


class ShipmentLine(Base):
    """Units of one order line in one shipment (product and sku copied from the line)."""

    __tablename__ = "shipment_lines"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    product_id: Mapped[str] = mapped_column(String(40))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)

    shipment: Mapped[Shipment] = relationship(back_populates="lines")

    __table_args__ = (
        UniqueConstraint("shipment_id", "order_line_id", name="shipment_lines_one_per_line"),
        CheckConstraint("quantity > 0", name="shipment_lines_quantity"),
    )


class ShipmentEvent(Base):
    """A tracking update as received, whether or not it moved the shipment (``applied``);
    the same status at the same time is one update (the unique constraint)."""

    __tablename__ = "shipment_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id"))
    status: Mapped[ShipmentStatus] = _enum_column(ShipmentStatus, 24)
    occurred_at: Mapped[datetime]
    location: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(64))
    applied: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = _now_column()

    shipment: Mapped[Shipment] = relationship(back_populates="events")

    __table_args__ = (
        UniqueConstraint("shipment_id", "status", "occurred_at", name="shipment_events_once"),
        CheckConstraint(f"status IN ({_SHIPMENT_STATUSES})", name="shipment_events_status"),
    )


class ShipmentLabel(Base):
    """The one label bought for a shipment (the unique constraint says at most one)."""

    __tablename__ = "shipment_labels"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id"))
    provider: Mapped[str] = mapped_column(String(16))
    provider_label_id: Mapped[str] = mapped_column(String(255))
    carrier: Mapped[str] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str] = mapped_column(String(128))
    tracking_url: Mapped[str | None] = mapped_column(Text)
    #: The provider's address of the label; None for the local provider, whose PDF is here.
    label_url: Mapped[str | None] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    voided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now_column()
    __table_args__ = (UniqueConstraint("shipment_id", name="shipment_labels_one_per_shipment"),)
