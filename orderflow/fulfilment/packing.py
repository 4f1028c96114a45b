"""What a shipment is made of and how it moves, without what follows for its order (that is
``moves.settle_order``): a new shipment checked against what the order still has to ship,
and a tracking update judged by the shipment state machine. Callers hold the order's lock
(``OrderRepository.lock_for_update``) before calling either, so per order line the units in
shipments that are not cancelled never exceed the units ordered, whatever the concurrency:
every writer of an order's shipments waits for that one row lock and then reads what the
others committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orderflow.errors import Conflict, TransitionNotAllowed, Unprocessable
from orderflow.event_types import OrderEventType
from orderflow.ids import new_id
from orderflow.models import Order, Shipment, ShipmentLine
from orderflow.orders.repository import OrderRepository
from orderflow.shipments.repository import ShipmentRepository, TrackingUpdate
from orderflow.shipments.state import moves_to
from orderflow.statuses import LabelStatus, OrderStatus, ShipmentStatus


class OverShipment(Conflict):
    slug, title = "over-shipment", "More than ordered would ship"


class NothingToShip(Conflict):
    slug, title = "nothing-to-ship", "Nothing left to ship"


@dataclass(frozen=True)
class ShipmentLineRequest:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class NewShipment:
    """``lines`` None: every unit not yet in a shipment."""

    lines: Sequence[ShipmentLineRequest] | None = None
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    buy_label: bool = False


def new_shipment(
    orders: OrderRepository, order: Order, command: NewShipment, actor: str
) -> Shipment:
    """Write a shipment of ``order`` (locked by the caller) and its order event. 409 unless
    the order is confirmed (shipped in part or not at all) and every line fits in what is
    left of it; 422 for a product the order does not have."""
    if order.status != OrderStatus.CONFIRMED:
        raise TransitionNotAllowed(
            f"an order that is {order.status.value} cannot get a new shipment",
            order_id=order.id,
        )
    if command.buy_label and command.tracking_number is not None:
        raise Unprocessable(
            "a shipment either buys its label or brings its tracking number, not both",
            errors=[{"field": "buy_label", "message": "not with tracking_number"}],
        )
    shipments = ShipmentRepository(orders.session)
    shipped = shipments.shipped_by_line(order.id)
    remaining = {line.product_id: (line, line.quantity - shipped.get(line.id, 0))
                 for line in order.lines}  # fmt: skip
    if command.lines is None:
        wanted = [(line, left) for line, left in remaining.values() if left > 0]
        if not wanted:
            raise NothingToShip(f"every unit of order {order.id} is in a shipment already")
    else:
        wanted = []
        seen: set[str] = set()
        for request in command.lines:
            if request.product_id in seen:
                raise Unprocessable(
                    "each product may appear on one line only",
                    errors=[{"field": "lines", "message": "duplicate product_id"}],
                )
            seen.add(request.product_id)
            if request.product_id not in remaining:
                raise Unprocessable(
                    f"order {order.id} has no line for product {request.product_id}",
                    errors=[{"field": "lines", "message": f"{request.product_id} not ordered"}],
                    product_id=request.product_id,
                )
            line, left = remaining[request.product_id]
            if request.quantity > left:
                raise OverShipment(
                    f"product {request.product_id}: {request.quantity} would ship, "
                    f"{left} of {line.quantity} ordered remain",
                    product_id=request.product_id,
                    remaining=left,
                )
            wanted.append((line, request.quantity))
    shipment = Shipment(
        id=new_id("shp"),
        order_id=order.id,
        status=(
            ShipmentStatus.LABEL_CREATED if command.tracking_number else ShipmentStatus.PENDING
        ),
        carrier=command.carrier,
        service=command.service,
        tracking_number=command.tracking_number,
        tracking_url=command.tracking_url,
        label_status=LabelStatus.PENDING if command.buy_label else LabelStatus.NONE,
        created_by=actor,
    )
    lines = [
        ShipmentLine(order_line_id=line.id, product_id=line.product_id, sku=line.sku,
                     quantity=quantity)
        for line, quantity in wanted
    ]  # fmt: skip
    shipments.add(shipment, lines)
    orders.record_event(
        order.id,
        OrderEventType.SHIPMENT_CREATED,
        actor,
        {"shipment_id": shipment.id,
         "lines": [{"product_id": line.product_id, "quantity": line.quantity} for line in lines]},
    )  # fmt: skip
    return shipment


def apply_update(
    orders: OrderRepository,
    shipment: Shipment,
    update: TrackingUpdate,
    *,
    source: str,
    actor: str,
) -> bool | None:
    """Record a tracking update of ``shipment`` (locked, its order's lock held) and move the
    shipment if the state machine and the update's date allow it. None: the same update was
    recorded before (nothing changes); False: recorded, but its status did not change (dated
    before the latest, a move the machine refuses, or the status it has); True: the
    shipment moved."""
    shipments = ShipmentRepository(orders.session)
    if shipments.has_update(shipment.id, update.status, update.occurred_at):
        return None
    moves = moves_to(shipment.status, shipment.status_at, update.status, update.occurred_at)
    if not shipments.record_update(shipment, update, source=source, applied=moves):
        return None
    if not moves:
        return False
    previous = shipment.status
    shipments.update(shipment, status=update.status, status_at=update.occurred_at)
    if previous is update.status:
        return False  # the same status, reported later: only its date moved
    orders.record_event(
        shipment.order_id,
        OrderEventType.SHIPMENT_UPDATED,
        actor,
        {"shipment_id": shipment.id, "from": previous.value, "to": update.status.value,
         "occurred_at": update.occurred_at.isoformat(), "source": source},
    )  # fmt: skip
    return True
