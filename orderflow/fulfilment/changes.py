"""Changing an order after it was placed (``PATCH /orders/{id}``).

What may change: the shipping address until the first shipment (one that is not cancelled);
line quantities, only down (0 removes the line), while nothing of that line is in a
shipment. Raising a quantity or adding a product is 409: place another order. An order whose
every line goes to zero is cancelled, through the cancel path (stock back, refund in full).

Everything happens under the order's row lock, in the caller's transaction: the lines and
totals, the stock given back through the reservations (the stock ledger records it), the
refund of the difference at the snapshot prices when the order was paid, the ``order_updated``
event (``order.updated`` in the feed) and the e-mail step. A shipment is created under the
same lock, so a change and a shipment of the same line never both win.

The body carries absolute values, so sending it again changes nothing more (no second
refund): no Idempotency-Key is needed. Nothing changes when nothing differs (200, no event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from orderflow.errors import Conflict, Unprocessable
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.moves import cancel_order
from orderflow.fulfilment.refund_requests import refund_change
from orderflow.fulfilment.reservations import lower_reservations
from orderflow.models import Order, OrderLine
from orderflow.money import Money
from orderflow.orders.repository import OrderRepository
from orderflow.orders.service import LineRequest, Viewer, get_order
from orderflow.shipments.repository import ShipmentRepository
from orderflow.statuses import OrderStatus, PaymentRecordStatus
from orderflow.steps import EmailKind, Step, schedule

#: Orders that may still change: not shipped, not ended.
CHANGEABLE = (OrderStatus.PENDING, OrderStatus.CONFIRMED)


class OrderNotChangeable(Conflict):
    slug, title = "order-not-changeable", "This change is not possible"


@dataclass(frozen=True)
class OrderChange:
    """``items``: the lines to change with their new quantity (0 removes); others stay."""

    shipping_address: dict[str, Any] | None = None
    items: list[LineRequest] | None = None


def change_order(session: Session, viewer: Viewer, order_id: str, change: OrderChange) -> Order:
    """Apply ``change`` to the order (its owner or an admin), or refuse it whole."""
    get_order(session, order_id, viewer)
    _check_request(change)
    orders = OrderRepository(session)
    order = orders.lock_for_update(order_id)
    if order.status not in CHANGEABLE:
        raise OrderNotChangeable(
            f"order {order_id} is {order.status.value}: it can no longer be changed",
            order_id=order_id,
        )
    shipments = ShipmentRepository(session)
    in_shipments = shipments.shipped_by_line(order_id)
    lowered = _lowered_lines(order, change.items or [], in_shipments)
    address = change.shipping_address
    if address == order.shipping_address:
        address = None
    if address is not None and in_shipments:
        raise OrderNotChangeable(
            f"order {order_id} has a shipment: its address can no longer change",
            order_id=order_id,
        )
    if lowered and len(lowered) == len(order.lines) and all(q == 0 for _, q in lowered):
        return cancel_order(session, order_id, viewer)  # every line to zero
    if not lowered and address is None:
        return order  # nothing differs
    if lowered:
        _check_payment_settled(orders, order)
        _check_never_shipped(shipments, order, lowered)
    return _apply(orders, order, viewer, address, lowered)


def _check_request(change: OrderChange) -> None:
    if change.shipping_address is None and not change.items:
        raise Unprocessable(
            "nothing to change: give shipping_address or items",
            errors=[{"field": "items", "message": "give shipping_address or items"}],
        )
    seen: set[str] = set()
    for index, item in enumerate(change.items or []):
        if item.product_id in seen:
            raise Unprocessable(
                f"product {item.product_id} is listed twice",
                errors=[{"field": f"items.{index}.product_id", "message": "listed twice"}],
            )
        seen.add(item.product_id)


def _lowered_lines(
    order: Order, items: list[LineRequest], in_shipments: dict[int, int]
) -> list[tuple[OrderLine, int]]:
    """(line, new quantity) of each line that goes down; 409 for a product the order does
    not have, a quantity that goes up, or a line that is (partly) in a shipment."""
    lines = {line.product_id: line for line in order.lines}
    lowered = []
    for item in items:
        line = lines.get(item.product_id)
        if line is None:
            raise OrderNotChangeable(
                f"order {order.id} has no line of product {item.product_id}: products cannot "
                "be added to an order; place another order",
                order_id=order.id,
                product_id=item.product_id,
            )
        if item.quantity > line.quantity:
            raise OrderNotChangeable(
                f"the line of product {item.product_id} has {line.quantity}; quantities can "
                f"only go down ({item.quantity} asked): place another order for more",
                order_id=order.id,
                product_id=item.product_id,
            )
        if item.quantity == line.quantity:
            continue
        if in_shipments.get(line.id, 0) > 0:
            raise OrderNotChangeable(
                f"{in_shipments[line.id]} of product {item.product_id} are in a shipment: "
                "that line can no longer change (return the goods instead)",
                order_id=order.id,
                product_id=item.product_id,
            )
        lowered.append((line, item.quantity))
    return lowered


def _check_payment_settled(orders: OrderRepository, order: Order) -> None:
    """Lines may change before the charge is asked for, or once it succeeded; not while it
    is under way (the provider may capture the old total any moment)."""
    charge = orders.charge_of(order.id)
    if charge is not None and charge.status != PaymentRecordStatus.SUCCEEDED:
        raise OrderNotChangeable(
            f"the payment of order {order.id} is under way ({charge.status.value}): retry "
            "once it has gone through",
            order_id=order.id,
        )


def _check_never_shipped(
    shipments: ShipmentRepository, order: Order, lowered: list[tuple[OrderLine, int]]
) -> None:
    """A line that was in a shipment since cancelled may be lowered, but not removed: the
    cancelled shipment still names it."""
    named = shipments.lines_ever_in_shipments(order.id)
    for line, quantity in lowered:
        if quantity == 0 and line.id in named:
            raise OrderNotChangeable(
                f"the line of product {line.product_id} was in a shipment (since cancelled): "
                "lower it to 1 instead of removing it",
                order_id=order.id,
                product_id=line.product_id,
            )


def _apply(
    orders: OrderRepository,
    order: Order,
    viewer: Viewer,
    address: dict[str, Any] | None,
    lowered: list[tuple[OrderLine, int]],
) -> Order:
    difference = Money.zero(order.currency)
    changed_items = []
    for line, quantity in lowered:
        difference += Money(line.unit_price_amount, order.currency) * (line.quantity - quantity)
        changed_items.append({"product_id": line.product_id, "from": line.quantity,
                              "to": quantity})  # fmt: skip
        if quantity == 0:
            orders.remove_line(order, line)
        else:
            orders.set_line_quantity(line, quantity)
    lower_reservations(
        orders.session,
        order.id,
        [(line.product_id, quantity) for line, quantity in lowered],
        viewer.user_id,
    )
    changes: dict[str, Any] = {}
    if address is not None:
        changes["shipping_address"] = address
    paid = order.captured_amount > 0
    if difference.amount:
        changes["subtotal_amount"] = order.subtotal_amount - difference.amount
        changes["total_amount"] = order.total_amount - difference.amount
        if paid:
            changes["reduced_amount"] = order.reduced_amount + difference.amount
    orders.update(order, **changes)
    refund = refund_change(orders, order, difference, viewer.user_id) if paid else None
    data: dict[str, Any] = {"items": changed_items, "difference": difference.amount,
                            "currency": order.currency,
                            "refund_id": refund.id if refund else None,
                            "refund_amount": refund.amount if refund else 0}  # fmt: skip
    if address is not None:
        data["shipping_address"] = address
    change_id = orders.record_event(order.id, OrderEventType.ORDER_UPDATED, viewer.user_id, data)
    schedule(orders.session, Step.SEND_EMAIL, order.id, kind=EmailKind.UPDATED.value,
             change_id=change_id)  # fmt: skip
    return order
