"""Return use cases of the API: ask for a return (the customer or an admin), approve or
reject it, receive it (admins), read them. Each locks the order first, then the return, and
writes the change with its timeline entry (and so its business event) in the caller's
transaction.

What a return may hold is measured under the order's row lock, per order line: units under
way in its shipments, less units already returned (asked for by a return not rejected, or
received by one), and only units whose return window is still open
(``ORDERFLOW_RETURN_WINDOW_DAYS`` after delivery, or after shipping while delivery is
unknown). Receiving puts the ``restock`` units back on the shelf once (the stamp on the
return line and the stock ledger's trigger) and asks for the refund of the received units at
the price the order was placed at, within what is left to refund
(``fulfilment.refund_requests``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orderflow import idempotency
from orderflow.errors import Conflict, Forbidden, NotFound, TransitionNotAllowed, Unprocessable
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.refund_requests import request_refund
from orderflow.fulfilment.reservations import give_back_stock
from orderflow.ids import new_id
from orderflow.models import Order, OrderLine, Refund
from orderflow.money import Money
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.orders.service import Viewer, get_order
from orderflow.pagination import Page
from orderflow.returns.models import Return, ReturnLine
from orderflow.returns.repository import ReturnRepository
from orderflow.returns.state import check_move
from orderflow.shipments.repository import ShipmentRepository
from orderflow.statuses import OrderStatus, RefundStatus, ReturnStatus

MAX_REASON_LENGTH = 500
#: Orders whose shipped units may come back.
_RETURNABLE_ORDERS = frozenset({OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED})


class ReturnExceedsShipped(Conflict):
    """More units than were shipped and not yet returned."""

    slug, title = "return-exceeds-shipped", "More than was shipped would be returned"


class ReturnWindowClosed(Conflict):
    """Units shipped and not returned, but delivered (or shipped) too long ago."""

    slug, title = "return-window-closed", "Outside the return window"


@dataclass(frozen=True)
class RequestedLine:
    product_id: str
    quantity: int
    reason: str = ""


@dataclass(frozen=True)
class ReceivedLine:
    product_id: str
    quantity: int
    restock: bool


# -- asking for a return ----------------------------------------------------------------------


def request_return_idempotently(
    session: Session,
    viewer: Viewer,
    order_id: str,
    lines: Sequence[RequestedLine],
    window_days: int,
    request: idempotency.IdempotentRequest | None,
    render: Callable[[Return], idempotency.StoredResponse],
) -> idempotency.Answer:
    """Ask for the return, or replay the answer given to the same ``Idempotency-Key``."""
    return idempotency.once(
        session,
        request,
        lambda: render(request_return(session, viewer, order_id, lines, window_days)),
    )


def request_return(
    session: Session,
    viewer: Viewer,
    order_id: str,
    lines: Sequence[RequestedLine],
    window_days: int,
    *,
    now: datetime | None = None,
) -> Return:
    """A return of ``lines`` of the order, ``requested``: its customer or an admin. 409 when
    a line asks for more than was shipped and not yet returned, or for units whose return
    window closed; 422 for a product the order does not have."""
    get_order(session, order_id, viewer)
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    if order.status not in _RETURNABLE_ORDERS:
        raise TransitionNotAllowed(
            f"an order that is {order.status.value} has nothing to return", order_id=order_id
        )
    wanted = _order_lines_of(order, lines)
    since = (now or datetime.now(UTC)) - timedelta(days=window_days)
    out = ShipmentRepository(session).units_out(order_id, since)
    returned = ReturnRepository(session).returned_by_line(order_id)
    for line, asked in wanted:
        units = out.get(line.id)
        shipped = units.shipped if units else 0
        already = returned.get(line.id, 0)
        left = max(shipped - already, 0)
        if asked.quantity > left:
            raise ReturnExceedsShipped(
                f"product {line.product_id}: {asked.quantity} asked, {shipped} shipped and "
                f"{already} returned already",
                product_id=line.product_id,
                returnable=left,
            )
        in_window = min(units.returnable if units else 0, left)
        if asked.quantity > in_window:
            raise ReturnWindowClosed(
                f"product {line.product_id}: {asked.quantity} asked, {in_window} may still "
                f"be returned ({window_days} days after delivery)",
                product_id=line.product_id,
                returnable=in_window,
            )
    return_ = Return(
        id=new_id("ret"),
        order_id=order_id,
        status=ReturnStatus.REQUESTED,
        currency=order.currency,
        requested_by=viewer.user_id,
        refund_amount=0,
    )
    rows = [
        ReturnLine(order_line_id=line.id, product_id=line.product_id, sku=line.sku,
                   quantity=asked.quantity, reason=asked.reason[:MAX_REASON_LENGTH])
        for line, asked in wanted
    ]  # fmt: skip
    ReturnRepository(session).add(return_, rows)
    orders.record_event(
        order_id,
        OrderEventType.RETURN_REQUESTED,
        viewer.user_id,
        {"return_id": return_.id,
         "lines": [{"product_id": row.product_id, "quantity": row.quantity, "reason": row.reason}
                   for row in rows]},
    )  # fmt: skip
    return return_


def _order_lines_of(
    order: Order, lines: Sequence[RequestedLine]
) -> list[tuple[OrderLine, RequestedLine]]:
    by_product = {line.product_id: line for line in order.lines}
    found: list[tuple[OrderLine, RequestedLine]] = []
    for asked in lines:
        line = by_product.get(asked.product_id)
        if line is None:
            raise Unprocessable(
                f"order {order.id} has no line for product {asked.product_id}",
                errors=[{"field": "lines", "message": f"{asked.product_id} not ordered"}],
                product_id=asked.product_id,
            )
        if any(seen.product_id == asked.product_id for _, seen in found):
            raise Unprocessable(
                "each product may appear on one line only",
                errors=[{"field": "lines", "message": "duplicate product_id"}],
            )
        found.append((line, asked))
    return found


# -- admins: approve, reject, receive ---------------------------------------------------------


def approve_return(session: Session, viewer: Viewer, return_id: str) -> Return:
    """``requested → approved``; approving it again changes nothing."""
    orders, returns, return_ = _lock(session, viewer, return_id)
    if return_.status is ReturnStatus.APPROVED:
        return return_
    _move(orders, returns, return_, ReturnStatus.APPROVED, viewer.user_id, {})
    return return_


def reject_return(session: Session, viewer: Viewer, return_id: str, note: str | None) -> Return:
    """``requested | approved → rejected`` (nothing came back); again changes nothing."""
    orders, returns, return_ = _lock(session, viewer, return_id)
    if return_.status is ReturnStatus.REJECTED:
        return return_
    note = None if note is None else note[:MAX_REASON_LENGTH]
    _move(orders, returns, return_, ReturnStatus.REJECTED, viewer.user_id, {"note": note},
          note=note)  # fmt: skip
    return return_


def receive_return(
    session: Session, viewer: Viewer, return_id: str, lines: Sequence[ReceivedLine]
) -> Return:
    """``approved → received``: what came back of each line (lines not named: nothing),
    the ``restock`` units back on the shelf once, and the refund of every received unit at
    its snapshot price, within what is left to refund. Receiving it again is 409."""
    orders, returns, return_ = _lock(session, viewer, return_id)
    check_move(return_.id, return_.status, ReturnStatus.RECEIVED)
    order = orders.lock_for_update(return_.order_id)  # held already: the row, fresh
    by_product = {line.product_id: line for line in return_.lines}
    told: dict[str, ReceivedLine] = {}
    for received in lines:
        line = by_product.get(received.product_id)
        if line is None:
            raise Unprocessable(
                f"return {return_.id} has no line for product {received.product_id}",
                errors=[{"field": "lines", "message": f"{received.product_id} not returned"}],
                product_id=received.product_id,
            )
        if received.product_id in told:
            raise Unprocessable(
                "each product may appear on one line only",
                errors=[{"field": "lines", "message": "duplicate product_id"}],
            )
        if received.quantity > line.quantity:
            raise Unprocessable(
                f"product {received.product_id}: {received.quantity} received, "
                f"{line.quantity} asked for",
                errors=[{"field": "lines", "message": "more than the return asked for"}],
                product_id=received.product_id,
            )
        told[received.product_id] = received
    if not any(received.quantity for received in told.values()):
        raise Unprocessable(
            "nothing received; reject the return instead",
            errors=[{"field": "lines", "message": "no unit received"}],
        )
    prices = {line.id: line.unit_price_amount for line in order.lines}
    value = 0
    for line in return_.lines:
        came = told.get(line.product_id)
        quantity = came.quantity if came else 0
        restock = bool(came and came.restock and quantity)
        returns.record_receipt(line, quantity, restock)
        value += quantity * prices[line.order_line_id]
    restocked = returns.mark_restocked(return_.id)
    give_back_stock(session, restocked)
    refund_amount = min(value, max(order.refundable.amount, 0))
    refund_id = None
    if refund_amount > 0:
        refund = request_refund(
            session,
            order.id,
            Money(refund_amount, order.currency),
            f"return {return_.id}",
            viewer.user_id,
        )
        refund_id = refund.id
    received_at = session.scalar(select(func.now()))
    _move(
        orders,
        returns,
        return_,
        ReturnStatus.RECEIVED,
        viewer.user_id,
        {"lines": [{"product_id": line.product_id, "quantity": line.received_quantity,
                    "restock": bool(line.restock)} for line in return_.lines],
         "restocked": [{"product_id": p, "quantity": q} for p, q in restocked],
         "refund_id": refund_id, "refund_amount": refund_amount, "value": value},
        refund_id=refund_id,
        refund_amount=refund_amount,
        received_at=received_at,
    )  # fmt: skip
    if refund_id is None:
        # Nothing left to refund (or nothing of value came back): settled at once.
        _move(orders, returns, return_, ReturnStatus.REFUNDED, viewer.user_id,
              {"refund_id": None, "refund_amount": 0})  # fmt: skip
    return return_


def _lock(
    session: Session, viewer: Viewer, return_id: str
) -> tuple[OrderRepository, ReturnRepository, Return]:
    if not viewer.is_admin:
        raise Forbidden("only admins may approve, reject or receive a return")
    returns = ReturnRepository(session)
    order_id = returns.require(return_id).order_id
    orders = OrderRepository(session)
    orders.lock_for_update(order_id)
    return orders, returns, returns.lock(return_id)


_ENTRY_OF = {
    ReturnStatus.APPROVED: OrderEventType.RETURN_APPROVED,
    ReturnStatus.REJECTED: OrderEventType.RETURN_REJECTED,
    ReturnStatus.RECEIVED: OrderEventType.RETURN_RECEIVED,
    ReturnStatus.REFUNDED: OrderEventType.RETURN_REFUNDED,
}


def _move(
    orders: OrderRepository,
    returns: ReturnRepository,
    return_: Return,
    target: ReturnStatus,
    actor: str,
    details: dict[str, object],
    **changes: object,
) -> None:
    """Move the return (locked) if its machine allows it, with its timeline entry."""
    current = return_.status
    check_move(return_.id, current, target)
    if not returns.move_status(return_, target, **changes):
        raise TransitionNotAllowed(f"return {return_.id} changed status concurrently; retry")
    orders.record_event(
        return_.order_id,
        _ENTRY_OF[target],
        actor,
        {"return_id": return_.id, "from": current.value, "to": target.value, **details},
    )


def refund_settled(orders: OrderRepository, refund: Refund, status: RefundStatus) -> None:
    """A refund moved to ``status`` (``refunds.record_refund_outcome``, the order's lock
    held): the return whose receipt asked for it becomes ``refunded`` when it succeeded.

    A refund that fails leaves its return ``received``: the goods are back, the money is
    not; an admin refunds by hand (``POST /orders/{id}/refunds``). A refund reported failed
    after it succeeded leaves a ``refunded`` return as it is (the order's refundable amount
    shows the money owed again)."""
    if status is not RefundStatus.SUCCEEDED:
        return
    returns = ReturnRepository(orders.session)
    return_ = returns.by_refund(refund.id)
    if return_ is None or return_.status is not ReturnStatus.RECEIVED:
        return
    _move(orders, returns, return_, ReturnStatus.REFUNDED, SYSTEM_ACTOR,
          {"refund_id": refund.id, "refund_amount": refund.amount})  # fmt: skip


# -- reading ----------------------------------------------------------------------------------


def get_return(session: Session, return_id: str, viewer: Viewer) -> Return:
    """The return if the viewer may see its order; anyone else is told it does not exist."""
    found = ReturnRepository(session).get(return_id)
    order = None if found is None else OrderRepository(session).get(found.order_id)
    if found is None or not viewer.may_see(order):
        raise NotFound(f"return {return_id} does not exist", return_id=return_id)
    return found


def list_returns(
    session: Session, order_id: str, viewer: Viewer, limit: int, offset: int
) -> Page[Return]:
    get_order(session, order_id, viewer)
    return ReturnRepository(session).page(order_id, limit, offset)
