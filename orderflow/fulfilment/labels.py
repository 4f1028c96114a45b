"""Buying a shipment's label (a pipeline step, like a charge) and voiding one.

At most one label per shipment whatever fails: one purchase runs at a time per shipment (a
lease that dies with its worker); the rate is chosen and kept with the
shipment in a transaction of its own before anything is bought (``quote``); the purchase
(``ShippingProvider.buy``) finds a label already bought for that rate instead of buying a
second; the label row is unique per shipment (``shipment_labels_one_per_shipment``) and
written under the order's and the shipment's locks. Provider calls hold no lock."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.event_types import OrderEventType
from orderflow.fulfilment.moves import settle_order
from orderflow.fulfilment.packing import apply_update
from orderflow.models import Shipment, ShipmentLabel
from orderflow.orders.repository import SYSTEM_ACTOR, OrderRepository
from orderflow.orders.state import ActorRole
from orderflow.shipments.repository import (
    ShipmentRepository,
    TrackingUpdate,
    label_purchase_lease,
)
from orderflow.shipping import Label, LabelRequest, Quote, ShippingProvider, ShippingRejected
from orderflow.statuses import LabelStatus, ShipmentStatus
from orderflow.steps import Step, schedule

log = structlog.get_logger(__name__)

#: The source of the tracking update a bought label makes.
LABEL_SOURCE = "label"


def buy_label(database: Database, provider: ShippingProvider, shipment_id: str) -> None:
    """Buy the shipment's label if it still wants one. Raises the provider's errors
    (``ShippingProviderUnavailable``: retry; ``ShippingRejected``: ``give_up_label``).

    One purchase per shipment at a time (``label_purchase_lease``): a second run of the step
    (the sweeper's re-drive while the first waits to retry, a redelivery) would otherwise
    look the rate's labels up before the first bought one, and buy another. The second
    leaves it to the first; if the first's worker dies, its lease dies with it and the
    sweeper re-drives the purchase."""
    with label_purchase_lease(database.engine, shipment_id) as mine:
        if not mine:
            log.info("label_purchase_under_way_elsewhere", shipment_id=shipment_id)
            return
        _buy_label(database, provider, shipment_id)


def _buy_label(database: Database, provider: ShippingProvider, shipment_id: str) -> None:
    with database.unit_of_work() as session:
        shipment = ShipmentRepository(session).require(shipment_id)
        if shipment.label_status is not LabelStatus.PENDING:
            return
        request = _request(session, shipment)
        quote = _kept_quote(shipment)
    if quote is None:
        quote = provider.quote(request)
        with database.unit_of_work() as session:
            orders, shipments = OrderRepository(session), ShipmentRepository(session)
            orders.lock_for_update(request.order_id)
            shipment = shipments.lock(shipment_id)
            if shipment.provider_rate_id is None:
                shipments.update(
                    shipment,
                    provider_shipment_id=quote.provider_shipment_id,
                    provider_rate_id=quote.rate_id,
                    carrier=shipment.carrier or quote.carrier,
                    service=shipment.service or quote.service,
                )
            session.commit()
            quote = _kept_quote(shipment) or quote
    label = provider.buy(request, quote)
    with database.unit_of_work() as session:
        if record_label(session, provider.name, shipment_id, label):
            session.commit()
        else:
            session.rollback()


def record_label(session: Session, provider_name: str, shipment_id: str, label: Label) -> bool:
    """Keep the label bought for the shipment (under the order's and the shipment's locks);
    False if one is kept already. A shipment cancelled meanwhile keeps it as voided and has
    it given back (a step)."""
    shipments = ShipmentRepository(session)
    orders = OrderRepository(session)
    order = orders.lock_for_update(shipments.require(shipment_id).order_id)
    shipment = shipments.lock(shipment_id)
    if shipments.label_of(shipment_id) is not None:
        return False
    cancelled = shipment.status is ShipmentStatus.CANCELLED
    shipments.add_label(
        ShipmentLabel(
            shipment_id=shipment_id,
            provider=provider_name,
            provider_label_id=label.provider_label_id,
            carrier=label.carrier,
            service=label.service,
            tracking_number=label.tracking_number,
            tracking_url=label.tracking_url,
            label_url=label.label_url,
            pdf=label.pdf,
        )
    )
    label_url = label.label_url or f"/api/v1/shipments/{shipment_id}/label"
    shipments.update(
        shipment,
        label_status=LabelStatus.VOIDED if cancelled else LabelStatus.PURCHASED,
        carrier=label.carrier,
        service=label.service,
        tracking_number=label.tracking_number,
        tracking_url=label.tracking_url,
        label_url=label_url,
    )
    orders.record_event(
        order.id,
        OrderEventType.LABEL_PURCHASED,
        SYSTEM_ACTOR,
        {"shipment_id": shipment_id, "provider": provider_name,
         "tracking_number": label.tracking_number, "voided": cancelled},
    )  # fmt: skip
    if cancelled:
        schedule(session, Step.VOID_LABEL, order.id, shipment_id=shipment_id)
        return True
    update = TrackingUpdate(ShipmentStatus.LABEL_CREATED, datetime.now(UTC), None, "label bought")
    if apply_update(orders, shipment, update, source=LABEL_SOURCE, actor=SYSTEM_ACTOR):
        settle_order(orders, order, role=ActorRole.SYSTEM, actor=SYSTEM_ACTOR)
    return True


def give_up_label(database: Database, shipment_id: str, reason: str) -> None:
    """The label could not be bought: the shipment says so (an admin may cancel it and
    create another, or bring a tracking number of their own)."""
    with database.unit_of_work() as session:
        shipments, orders = ShipmentRepository(session), OrderRepository(session)
        order = orders.lock_for_update(shipments.require(shipment_id).order_id)
        shipment = shipments.lock(shipment_id)
        if shipment.label_status is not LabelStatus.PENDING:
            return
        shipments.update(shipment, label_status=LabelStatus.FAILED)
        orders.record_event(
            order.id, OrderEventType.LABEL_FAILED, SYSTEM_ACTOR,
            {"shipment_id": shipment_id, "reason": reason[:200]},
        )  # fmt: skip
        session.commit()


def void_label(database: Database, provider: ShippingProvider, shipment_id: str) -> None:
    """Give back the label of a cancelled shipment, once (``voided_at``, set only after the
    provider took it back). A label not bought yet is voided by the purchase that ends."""
    with database.unit_of_work() as session:
        label = ShipmentRepository(session).label_of(shipment_id)
        if label is None or label.voided_at is not None:
            return
        provider_label_id = label.provider_label_id
    try:
        provider.void(provider_label_id)
    except ShippingRejected as error:  # refunded already, or too late to: nothing to retry
        log.warning("label_void_refused", shipment_id=shipment_id, error=str(error))
    with database.unit_of_work() as session:
        label = ShipmentRepository(session).label_of(shipment_id)
        if label is not None and label.voided_at is None:
            label.voided_at = datetime.now(UTC)
        session.commit()


def _kept_quote(shipment: Shipment) -> Quote | None:
    if shipment.provider_shipment_id is None or shipment.provider_rate_id is None:
        return None
    return Quote(
        shipment.provider_shipment_id,
        shipment.provider_rate_id,
        shipment.carrier,
        shipment.service,
    )


def _request(session: Session, shipment: Shipment) -> LabelRequest:
    order = OrderRepository(session).get(shipment.order_id)
    assert order is not None
    return LabelRequest(
        shipment_id=shipment.id,
        order_id=shipment.order_id,
        address_to=dict(order.shipping_address),
        units=sum(line.quantity for line in shipment.lines),
        carrier=shipment.carrier,
        service=shipment.service,
    )
