"""The sweeper: finds orders whose next step has not happened for a while and schedules it
again. This is what makes a flushed or restarted broker harmless: the database says what
is left to do, the broker is only how it gets there.

Each query reads at most one batch of ids (``orders.repository.SWEEP_BATCH``); what is left is
found by the next sweep. The conditions are named here; the statements are the repository's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from orderflow.fulfilment.invoicing import INVOICED_STATUSES
from orderflow.fulfilment.notifications import EMAIL_STATUSES
from orderflow.orders.repository import (
    SWEEP_BATCH,
    OrderRepository,
    all_of,
    charge_in,
    email_sent,
    has_invoice,
    has_reservation,
    not_parked,
    status_in,
)
from orderflow.shipments.repository import ShipmentRepository
from orderflow.sms.repository import SmsRepository
from orderflow.statuses import OrderStatus
from orderflow.statuses import PaymentRecordStatus as Charge
from orderflow.steps import EmailKind, Step, schedule

DEFAULT_STALL_SECONDS = 30.0

_PENDING = (OrderStatus.PENDING,)
_ENDED = (OrderStatus.CANCELLED, OrderStatus.FAILED)


@dataclass(frozen=True)
class Redrive:
    step: Step
    order_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def redrive_stalled(session: Session, stalled_for: float = DEFAULT_STALL_SECONDS) -> list[Redrive]:
    """Schedule the next step of every stalled order (through the outbox); return them."""
    work = find_stalled_work(session, stalled_for)
    for item in work:
        schedule(session, item.step, item.order_id, **item.kwargs)
    # Touching the orders makes the next sweeps wait a whole stall period before scheduling
    # them again, so a broker or worker outage does not pile up duplicate messages.
    OrderRepository(session).touch_all({item.order_id for item in work})
    ShipmentRepository(session).touch_all(
        [str(item.kwargs["shipment_id"]) for item in work if "shipment_id" in item.kwargs]
    )
    SmsRepository(session).touch_all(
        [(item.order_id, str(item.kwargs["kind"])) for item in work if item.step is Step.SEND_SMS]
    )
    return work


def find_stalled_work(
    session: Session, stalled_for: float, *, since_last_event: bool = False
) -> list[Redrive]:
    """Steps owed for longer than ``stalled_for`` seconds. The sweeper measures from the
    order's ``updated_at``, which its own re-drives touch (so it waits a whole stall period
    between two); ``since_last_event`` measures from the order's last event instead, which
    re-drives never write, so a report (the metrics) sees the work for as long as it is owed."""
    cutoff = datetime.now(UTC) - timedelta(seconds=stalled_for)
    orders = OrderRepository(session)

    def owed(step: Step, condition: ColumnElement[bool], **kwargs: Any) -> list[Redrive]:
        ids = orders.stalled_ids(condition, cutoff, since_last_event=since_last_event)
        return [Redrive(step, order_id, dict(kwargs)) for order_id in ids]

    work = [
        *owed(Step.RESERVE_STOCK, _pending_unreserved()),
        *owed(Step.CHARGE_PAYMENT, _pending_reserved_unpaid()),
        *owed(Step.CHARGE_PAYMENT, _ended_with_charge_in_flight()),
        *owed(Step.GENERATE_INVOICE, all_of(status_in(INVOICED_STATUSES), ~has_invoice())),
    ]
    work += [
        Redrive(Step.REFUND_PAYMENT, order_id, {"refund_id": refund_id})
        for order_id, refund_id in orders.stalled_refunds(cutoff)
    ]
    for kind, statuses in EMAIL_STATUSES.items():
        condition = all_of(status_in(statuses), ~email_sent(kind.value))
        if kind is EmailKind.CONFIRMATION:
            condition = all_of(condition, has_invoice())
        work += owed(Step.SEND_EMAIL, condition, kind=kind.value)
    # Labels: a purchase or a void whose message was lost (the shipment is touched instead).
    for order_id, shipment_id, buy in ShipmentRepository(session).stalled_labels(
        cutoff, SWEEP_BATCH
    ):
        step = Step.BUY_LABEL if buy else Step.VOID_LABEL
        work.append(Redrive(step, order_id, {"shipment_id": shipment_id}))
    # Texts still owed whose step's message was lost or whose retries ran out.
    for order_id, sms_kind in SmsRepository(session).stalled(cutoff, SWEEP_BATCH):
        work.append(Redrive(Step.SEND_SMS, order_id, {"kind": sms_kind}))
    return work


def _pending_unreserved() -> ColumnElement[bool]:
    return all_of(status_in(_PENDING), not_parked(), ~has_reservation())


def _pending_reserved_unpaid() -> ColumnElement[bool]:
    """Pending, stock held, and the charge not final nor parked for an operator. Includes
    orders waiting on a customer action: the charge step asks the provider how they stand,
    which heals a payment that succeeded while its webhook was lost."""
    return all_of(
        status_in(_PENDING),
        not_parked(),
        has_reservation(),
        ~charge_in(Charge.SUCCEEDED, Charge.DECLINED, Charge.UNAVAILABLE),
    )


def _ended_with_charge_in_flight() -> ColumnElement[bool]:
    """Cancelled or failed while a charge was under way: it may have captured money."""
    return all_of(status_in(_ENDED), charge_in(Charge.PROCESSING, Charge.REQUIRES_ACTION))
