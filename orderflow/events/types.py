"""How an order timeline entry maps to a business event (``orderflow.event_types``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orderflow.event_types import EventType, OrderEventType


class SubjectType(StrEnum):
    ORDER = "order"
    REFUND = "refund"
    SHIPMENT = "shipment"
    RETURN = "return"


@dataclass(frozen=True)
class Fact:
    """A business event to write for a timeline entry: its type and its subject. ``data`` is
    given for subjects that are not orders; an order's is read when the event is written."""

    type: EventType
    subject_type: SubjectType
    subject_id: str
    data: dict[str, Any] | None = None


__all__ = ["EventType", "Fact", "SubjectType", "fact_of"]

_ON_STATUS = {
    "confirmed": EventType.ORDER_CONFIRMED,
    "failed": EventType.ORDER_FAILED,
    "cancelled": EventType.ORDER_CANCELLED,
    "shipped": EventType.ORDER_SHIPPED,
    "delivered": EventType.ORDER_DELIVERED,
}
_ON_ENTRY: dict[str, EventType] = {
    OrderEventType.ORDER_PLACED: EventType.ORDER_PLACED,
    OrderEventType.ORDER_UPDATED: EventType.ORDER_UPDATED,
    OrderEventType.PAYMENT_SUCCEEDED: EventType.PAYMENT_SUCCEEDED,
    OrderEventType.PAYMENT_FAILED: EventType.PAYMENT_FAILED,
    OrderEventType.INVOICE_GENERATED: EventType.INVOICE_GENERATED,
}


def fact_of(order_id: str, entry: str, data: dict[str, Any]) -> Fact | None:
    """The business event a timeline entry is, if any (``stock_reserved``, ``email_sent``
    and the like are internal steps, not facts for the outside world)."""
    if entry == OrderEventType.STATUS_CHANGED:
        type_ = _ON_STATUS.get(str(data.get("to")))
    else:
        type_ = _ON_ENTRY.get(entry)
    if type_ is not None:
        return Fact(type_, SubjectType.ORDER, order_id)
    if entry in _ON_SHIPMENT:
        # Shipments are subjects of their own; their data is read at commit (``snapshots``).
        type_ = _ON_SHIPMENT[entry]
        if type_ is EventType.SHIPMENT_UPDATED and data.get("to") == "delivered":
            type_ = EventType.SHIPMENT_DELIVERED
        return Fact(type_, SubjectType.SHIPMENT, str(data.get("shipment_id")))
    if entry in _ON_RETURN:
        # Returns too; their data is read at commit (``snapshots.read_returns``).
        return Fact(_ON_RETURN[entry], SubjectType.RETURN, str(data.get("return_id")))
    refund_type = _ON_REFUND.get(entry)
    if refund_type is not None:
        refund_id = str(data.get("refund_id"))
        return Fact(
            refund_type,
            SubjectType.REFUND,
            refund_id,
            {
                "id": refund_id,
                "order_id": order_id,
                "amount": data.get("amount"),
                "currency": data.get("currency"),
                "status": "succeeded" if refund_type is EventType.REFUND_SUCCEEDED else "failed",
                "provider_refund_id": data.get("provider_refund_id"),
                "failure_code": data.get("failure_code"),
            },
        )
    return None


#: Timeline entries about one refund (``refund_id`` in their data: the subject).
_ON_REFUND: dict[str, EventType] = {
    OrderEventType.PAYMENT_REFUNDED: EventType.REFUND_SUCCEEDED,
    OrderEventType.REFUND_FAILED: EventType.REFUND_FAILED,
}


def matches(type_: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether ``type_`` is one of ``patterns``; ``order.*`` and ``*`` are wildcards."""
    for pattern in patterns:
        if pattern in ("*", type_):
            return True
        if pattern.endswith(".*") and type_.startswith(pattern[:-1]):
            return True
    return False


def check_patterns(patterns: list[str]) -> list[str]:
    """Unknown types or wildcards are refused (``ValueError`` naming them)."""
    families = {t.value.split(".")[0] for t in EventType}
    known = {t.value for t in EventType} | {f"{family}.*" for family in families} | {"*"}
    unknown = [pattern for pattern in patterns if pattern not in known]
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    return patterns


#: Timeline entries about one shipment (``shipment_id`` in their data: the subject).
_ON_SHIPMENT: dict[str, EventType] = {
    OrderEventType.SHIPMENT_CREATED: EventType.SHIPMENT_CREATED,
    OrderEventType.SHIPMENT_UPDATED: EventType.SHIPMENT_UPDATED,
    OrderEventType.SHIPMENT_CANCELLED: EventType.SHIPMENT_UPDATED,
}


#: Timeline entries about one return (``return_id`` in their data: the subject).
_ON_RETURN: dict[str, EventType] = {
    OrderEventType.RETURN_REQUESTED: EventType.RETURN_REQUESTED,
    OrderEventType.RETURN_APPROVED: EventType.RETURN_UPDATED,
    OrderEventType.RETURN_REJECTED: EventType.RETURN_UPDATED,
    OrderEventType.RETURN_RECEIVED: EventType.RETURN_RECEIVED,
    OrderEventType.RETURN_REFUNDED: EventType.RETURN_UPDATED,
}
