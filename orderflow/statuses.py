"""Every status as an enum, in one place: the order aggregate's (the order's own, whose moves
``orders.state`` rules, its payment status, and the kind and status of its payment rows) and
a cart's, a shipment's and a return's."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentKind(StrEnum):
    """What a ``payments`` row is: the order's one charge, or its one refund."""

    CHARGE = "charge"
    REFUND = "refund"


class PaymentRecordStatus(StrEnum):
    """Where a ``payments`` row stands. ``succeeded`` and ``declined`` are final; a charge is
    ``unavailable`` while parked after the provider could not be reached."""

    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    UNAVAILABLE = "unavailable"

    @property
    def is_final(self) -> bool:
        return self in (PaymentRecordStatus.SUCCEEDED, PaymentRecordStatus.DECLINED)


class RefundStatus(StrEnum):
    """A refund is written ``pending`` before the provider is asked; a provider that later
    reports a succeeded refund failed moves it to ``failed`` and the money is refundable
    again."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CartStatus(StrEnum):
    """Where a cart stands. Only an ``open`` cart changes; it becomes ``completed`` with the
    order placed from it, or ``expired`` once untouched for ``ORDERFLOW_CART_TTL_HOURS``."""

    OPEN = "open"
    COMPLETED = "completed"
    EXPIRED = "expired"


class ShippingStatus(StrEnum):
    """How far an order's goods are, derived from its shipments' line quantities
    (``shipments.state.derive_shipping_status``)."""

    NOT_SHIPPED = "not_shipped"
    PROCESSING = "processing"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"


class ShipmentStatus(StrEnum):
    """Where one shipment stands; ``shipments.state`` rules its moves."""

    PENDING = "pending"
    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILURE = "failure"
    RETURNED_TO_SENDER = "returned_to_sender"
    CANCELLED = "cancelled"


class LabelStatus(StrEnum):
    """A shipment's label at the shipping provider: ``none`` when the admin brought their
    own tracking number (or none), else ``pending`` until the purchase step bought it."""

    NONE = "none"
    PENDING = "pending"
    PURCHASED = "purchased"
    FAILED = "failed"
    VOIDED = "voided"


class ReturnStatus(StrEnum):
    """Where a return stands; ``returns.state`` rules its moves: ``requested → approved →
    received → refunded``, or ``rejected`` before anything was received."""

    REQUESTED = "requested"
    APPROVED = "approved"
    RECEIVED = "received"
    REFUNDED = "refunded"
    REJECTED = "rejected"


class SmsStatus(StrEnum):
    """A text message owed to a customer (``sms_messages``): ``pending`` until the send step
    settles it as ``sent``, ``failed`` (the provider refused it for good) or ``skipped`` (the
    customer opted out or removed the phone before it went)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
