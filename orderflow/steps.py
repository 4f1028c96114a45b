"""Names of the pipeline steps and how one is scheduled: an outbox message whose topic is the
step's task name, written in the caller's transaction."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from orderflow import outbox


class Step(StrEnum):
    RESERVE_STOCK = "orderflow.reserve_stock"
    CHARGE_PAYMENT = "orderflow.charge_payment"
    GENERATE_INVOICE = "orderflow.generate_invoice"
    SEND_EMAIL = "orderflow.send_email"
    SEND_SMS = "orderflow.send_sms"
    REFUND_PAYMENT = "orderflow.refund_payment"
    BUY_LABEL = "orderflow.buy_label"
    VOID_LABEL = "orderflow.void_label"
    TRACK_SHIPMENT = "orderflow.track_shipment"


class EmailKind(StrEnum):
    CONFIRMATION = "confirmation"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"


class SmsKind(StrEnum):
    """The moves that also go by text message, to customers who opted in."""

    SHIPPED = "shipped"
    DELIVERED = "delivered"


def schedule(session: Session, step: Step, order_id: str, **kwargs: Any) -> None:
    """Run ``step`` for the order once the caller's transaction commits."""
    outbox.enqueue(session, step_message(step, order_id, **kwargs))


def step_message(step: Step, order_id: str, **kwargs: Any) -> dict[str, Any]:
    """The outbox row that schedules ``step``: written by ``schedule``, or within a larger
    statement (the placement's)."""
    return outbox.new_message(step.value, order_id, {"order_id": order_id, **kwargs})
