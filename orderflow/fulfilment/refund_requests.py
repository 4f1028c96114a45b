"""Asking for a refund: whole or part of the capture, each a row of its own (``ref_…``).

A refund is asked for under the order's row lock: its amount must fit in what is left of
the capture (captured - succeeded - pending), and it is written ``pending`` with the order's
counters, its event and the outbox message of the refund step in one transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from orderflow import idempotency
from orderflow.errors import Forbidden, RefundExceedsRefundable, Unprocessable
from orderflow.event_types import OrderEventType
from orderflow.models import Order, Refund
from orderflow.money import Money
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.orders.service import Viewer, get_order
from orderflow.steps import Step, schedule

#: The reason of the refund that gives back the whole capture of an order that ended.
ORDER_ENDED = "order ended after payment"
MAX_REASON_LENGTH = 500


def request_refund(
    session: Session, order_id: str, amount: Money, reason: str, actor: str
) -> Refund:
    """Ask for a refund of ``amount``; 409 when more than what is left to refund."""
    if amount.amount <= 0:
        raise Unprocessable(
            "a refund is of at least one minor unit",
            errors=[{"field": "amount", "message": "must be positive"}],
        )
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    if amount.currency != order.currency:
        raise Unprocessable(
            f"the order was paid in {order.currency}, not {amount.currency}",
            errors=[{"field": "currency", "message": f"must be {order.currency}"}],
        )
    if amount.amount > order.refundable.amount:
        raise RefundExceedsRefundable(
            f"order {order_id} has {order.refundable.amount} {order.currency} left to refund "
            f"(captured {order.captured_amount}, refunded {order.refunded_amount}, pending "
            f"{order.refund_pending_amount}); {amount.amount} asked"
        )
    return _add_refund(orders, order, amount, reason[:MAX_REASON_LENGTH], actor)


def refund_in_full(orders: OrderRepository, order: Order, reason: str = ORDER_ENDED) -> None:
    """Give back whatever of the capture is not refunded or being refunded (an order that
    ended after it was paid). Nothing when nothing is left."""
    if order.refundable.amount > 0:
        _add_refund(orders, order, order.refundable, reason, SYSTEM_ACTOR)


def _add_refund(
    orders: OrderRepository, order: Order, amount: Money, reason: str, actor: str
) -> Refund:
    refund = orders.add_refund(order.id, amount, reason)
    orders.update(order, refund_pending_amount=order.refund_pending_amount + amount.amount)
    orders.record_event(
        order.id,
        OrderEventType.REFUND_REQUESTED,
        actor,
        {"refund_id": refund.id, "amount": amount.amount, "currency": amount.currency,
         "reason": reason},
    )  # fmt: skip
    orders.record_update(order.id, actor, ["refundable_amount"])
    schedule(orders.session, Step.REFUND_PAYMENT, order.id, refund_id=refund.id)
    return refund


def refund_order(
    session: Session,
    viewer: Viewer,
    order_id: str,
    amount: int,
    reason: str,
    request: idempotency.IdempotentRequest | None,
    render: Callable[[Refund], idempotency.StoredResponse],
) -> idempotency.Answer:
    """An admin refunds ``amount`` minor units of the order's currency (``POST
    /orders/{id}/refunds``), or the answer already given to the same Idempotency-Key."""
    if not viewer.is_admin:
        raise Forbidden("only admins may refund an order")
    order = get_order(session, order_id, viewer)

    def refund() -> idempotency.StoredResponse:
        money = Money(amount, order.currency)
        return render(request_refund(session, order_id, money, reason, viewer.user_id))

    return idempotency.once(session, request, refund)


def list_refunds(session: Session, viewer: Viewer, order_id: str) -> list[Refund]:
    """The order's refunds, oldest first: its owner or an admin."""
    get_order(session, order_id, viewer)
    return OrderRepository(session).refunds_of(order_id)
