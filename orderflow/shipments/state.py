"""The shipment state machine, beside the order's (``orders.state``): which status may follow
which, how a tracking update is judged against what the shipment already knows, and the
order's ``shipping_status`` derived from its shipments' line quantities.

The moves are closed under chaining (if a → b and b → c are allowed, so is a → c): a carrier
reports whatever it saw last, skipping statuses in between, and a shipment that applies only
updates dated after the one it holds ends in the status of the latest update, in whatever
order the updates arrive (``tests/unit/shipments/test_state.py`` checks both properties).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from orderflow.errors import TransitionNotAllowed
from orderflow.statuses import OrderStatus, ShipmentStatus, ShippingStatus

S = ShipmentStatus

#: Statuses a carrier's (or a warehouse's) tracking update may report.
TRACKING = frozenset({S.LABEL_CREATED, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED, S.FAILURE,
                      S.RETURNED_TO_SENDER})  # fmt: skip
#: A shipment's goods have left: they count as shipped for the order.
UNDER_WAY = frozenset({S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED, S.FAILURE,
                       S.RETURNED_TO_SENDER})  # fmt: skip
#: Statuses a shipment never leaves.
TERMINAL = frozenset({S.DELIVERED, S.RETURNED_TO_SENDER, S.CANCELLED})
#: Statuses from which an admin may still cancel the shipment (its lines may ship again).
CANCELLABLE = frozenset({S.PENDING, S.LABEL_CREATED})

_MOVING = frozenset({S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.FAILURE})

#: Allowed moves. A parcel goes back from out for delivery to in transit after a missed
#: attempt, and a carrier's ``failure`` (an exception: damaged, held) may still end well.
TRANSITIONS: frozenset[tuple[ShipmentStatus, ShipmentStatus]] = frozenset(
    {(S.PENDING, target) for target in TRACKING | {S.CANCELLED}}
    | {(S.LABEL_CREATED, target) for target in (TRACKING - {S.LABEL_CREATED}) | {S.CANCELLED}}
    | {
        (source, target)
        for source in _MOVING
        for target in _MOVING | {S.DELIVERED, S.RETURNED_TO_SENDER}
        if source != target
    }
)

#: How far along each status is: breaks ties between updates dated the same instant.
RANK = {S.PENDING: 0, S.LABEL_CREATED: 1, S.IN_TRANSIT: 2, S.OUT_FOR_DELIVERY: 3, S.FAILURE: 4,
        S.RETURNED_TO_SENDER: 5, S.DELIVERED: 6, S.CANCELLED: 7}  # fmt: skip


def is_allowed(current: ShipmentStatus, target: ShipmentStatus) -> bool:
    return (current, target) in TRANSITIONS


def check_cancel(current: ShipmentStatus) -> None:
    if current not in CANCELLABLE:
        raise TransitionNotAllowed(
            f"a shipment that is {current.value} can no longer be cancelled"
            + ("; return it instead" if current in UNDER_WAY else "")
        )


def moves_to(
    current: ShipmentStatus,
    current_at: datetime | None,
    reported: ShipmentStatus,
    occurred_at: datetime,
) -> bool:
    """Whether a tracking update (``reported`` at ``occurred_at``) moves a shipment that is
    ``current`` since ``current_at`` (None: no update has moved it yet). An update dated
    before the latest one applied never moves it, whatever it says; one dated the same
    instant moves it only forward. The same status again, dated later, is applied too (the
    shipment stays, but an older update can no longer move it)."""
    if reported == current and current not in TERMINAL:
        return current_at is None or occurred_at > current_at
    if not is_allowed(current, reported):
        return False
    if current_at is None or occurred_at > current_at:
        return True
    return occurred_at == current_at and RANK[reported] > RANK[current]


@dataclass(frozen=True)
class LineProgress:
    """One order line: units ordered, and units in its shipments that are under way and
    delivered (cancelled shipments excluded)."""

    ordered: int
    under_way: int
    delivered: int


def every_unit_under_way(lines: Iterable[LineProgress]) -> bool:
    """Whether every unit ordered is in a shipment under way (or arrived): when the order
    becomes ``shipped``. Not the same as a ``shipping_status`` past ``shipped``: one parcel
    may be delivered (``partially_delivered``) while another has not left."""
    ordered = under_way = 0
    for line in lines:
        ordered += line.ordered
        under_way += min(line.under_way, line.ordered)
    return ordered > 0 and under_way == ordered


def derive_shipping_status(
    order_status: OrderStatus, lines: Iterable[LineProgress]
) -> ShippingStatus:
    """The order's ``shipping_status``: ``not_shipped`` until it is confirmed (and once it is
    cancelled or failed), ``processing`` while nothing is under way, then by units."""
    if order_status not in (OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        return ShippingStatus.NOT_SHIPPED
    ordered = under_way = delivered = 0
    for line in lines:
        ordered += line.ordered
        under_way += min(line.under_way, line.ordered)
        delivered += min(line.delivered, line.ordered)
    if ordered and delivered == ordered:
        return ShippingStatus.DELIVERED
    if delivered:
        return ShippingStatus.PARTIALLY_DELIVERED
    if ordered and under_way == ordered:
        return ShippingStatus.SHIPPED
    if under_way:
        return ShippingStatus.PARTIALLY_SHIPPED
    return ShippingStatus.PROCESSING
