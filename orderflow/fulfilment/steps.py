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
    REFUND_PAYMENT = "orderflow.refund_payment"


class EmailKind(StrEnum):
    CONFIRMATION = "confirmation"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"


def schedule(session: Session, step: Step, order_id: str, **kwargs: Any) -> None:
    outbox.enqueue(session, step.value, order_id, _arguments(order_id, kwargs))


def step_message(step: Step, order_id: str, **kwargs: Any) -> dict[str, Any]:
    """The outbox row that schedules ``step``, for ``outbox.insert_message`` within a larger
    statement (the intake's)."""
    return outbox.new_message(step.value, order_id, _arguments(order_id, kwargs))


def _arguments(order_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": order_id, **extra}
