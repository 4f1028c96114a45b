"""Every kind of event, as enums: one vocabulary for the order timeline, one for the facts
the outside world is told about (the event feed and outgoing webhooks)."""

from __future__ import annotations

from enum import StrEnum


class OrderEventType(StrEnum):
    """An entry of an order's own timeline (``GET /orders/{id}/events``, ``order_events``)."""

    ORDER_PLACED = "order_placed"
    STATUS_CHANGED = "status_changed"
    #: The order as ``GET`` shows it changed with no move of its status (its money after a
    #: refund, its shipping status, its address or lines); ``data["changed"]`` names fields.
    ORDER_UPDATED = "order_updated"
    STOCK_RESERVED = "stock_reserved"
    STOCK_RELEASED = "stock_released"
    PAYMENT_REQUIRES_ACTION = "payment_requires_action"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_UNAVAILABLE = "payment_unavailable"
    PAYMENT_REDRIVEN = "payment_redriven"
    REFUND_REQUESTED = "refund_requested"
    PAYMENT_REFUNDED = "payment_refunded"
    REFUND_FAILED = "refund_failed"
    CREDIT_NOTE_ISSUED = "credit_note_issued"
    PAYMENT_ANOMALY = "payment_anomaly"
    INVOICE_GENERATED = "invoice_generated"
    EMAIL_SENT = "email_sent"
    SMS_SENT = "sms_sent"
    SHIPMENT_CREATED = "shipment_created"
    SHIPMENT_UPDATED = "shipment_updated"
    SHIPMENT_CANCELLED = "shipment_cancelled"
    LABEL_PURCHASED = "label_purchased"
    LABEL_FAILED = "label_failed"
    RETURN_REQUESTED = "return_requested"
    RETURN_APPROVED = "return_approved"
    RETURN_REJECTED = "return_rejected"
    RETURN_RECEIVED = "return_received"
    RETURN_REFUNDED = "return_refunded"


class EventType(StrEnum):
    """A business fact as integrators see it (``subject.verb``)."""

    ORDER_PLACED = "order.placed"
    ORDER_CONFIRMED = "order.confirmed"
    ORDER_FAILED = "order.failed"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_UPDATED = "order.updated"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    INVOICE_GENERATED = "invoice.generated"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    SHIPMENT_CREATED = "shipment.created"
    SHIPMENT_UPDATED = "shipment.updated"
    SHIPMENT_DELIVERED = "shipment.delivered"
    RETURN_REQUESTED = "return.requested"
    RETURN_RECEIVED = "return.received"
    #: A return approved, rejected, or refunded (its refund succeeded).
    RETURN_UPDATED = "return.updated"
