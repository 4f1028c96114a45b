"""Tracking updates from the shipping provider: its webhook names a parcel (``schedule_
tracking``, in the request's transaction), and a pipeline step reads the parcel's history
back from the provider and applies it (``refresh_tracking``): a forged or replayed webhook
body moves nothing, and Shippo's webhooks, which it does not promise to deliver once, are
deduplicated like every tracking update (same status and time: nothing happens)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from orderflow.db import Database
from orderflow.fulfilment.shipping import record_tracking
from orderflow.orders.repository import SYSTEM_ACTOR
from orderflow.orders.state import ActorRole
from orderflow.shipments.repository import ShipmentRepository, TrackingUpdate
from orderflow.shipping import ShippingProvider
from orderflow.statuses import LabelStatus, ShipmentStatus
from orderflow.steps import Step, schedule

#: The ``source`` of updates read back from the provider.
PROVIDER_SOURCE = "provider"


def schedule_tracking(session: Session, carrier: str, tracking_number: str) -> int:
    """Schedule a tracking refresh for each of our shipments with that tracking number and
    a label we bought; returns how many. Unknown parcels are acknowledged and ignored."""
    count = 0
    for shipment in ShipmentRepository(session).by_tracking_number(tracking_number):
        if shipment.label_status is LabelStatus.PURCHASED and (
            shipment.status is not ShipmentStatus.CANCELLED
        ):
            schedule(session, Step.TRACK_SHIPMENT, shipment.order_id, shipment_id=shipment.id)
            count += 1
    return count


#: Parcels the simulated carrier reports on per run (one short transaction each); the rest
#: wait for the next run, a fraction of a step later.
CARRIER_BATCH = 200


def poll_carrier(database: Database, provider: ShippingProvider, limit: int = CARRIER_BATCH) -> int:
    """Read back the tracking of every parcel on its way whose label ``provider`` issued, as
    ``track_shipment`` does after a webhook: how the ``local`` provider's simulated carrier
    moves parcels (beat runs this every ``local_carrier_poll_seconds``). Returns how many
    updates were new."""
    with database.unit_of_work() as session:
        carried = ShipmentRepository(session).carried_by(provider.name, limit)
    return sum(refresh_tracking(database, provider, shipment_id) for shipment_id in carried)


def refresh_tracking(database: Database, provider: ShippingProvider, shipment_id: str) -> int:
    """Read the shipment's tracking history from the provider and apply each update (each
    in its own transaction, oldest first); returns how many were new."""
    with database.unit_of_work() as session:
        shipment = ShipmentRepository(session).require(shipment_id)
        carrier, number = shipment.carrier, shipment.tracking_number
    if carrier is None or number is None:
        return 0
    new = 0
    for report in provider.track(carrier.lower(), number):
        with database.unit_of_work() as session:
            update = TrackingUpdate(
                report.status, report.occurred_at, report.location, report.description
            )
            _, recorded = record_tracking(
                session,
                shipment_id,
                update,
                role=ActorRole.SYSTEM,
                actor=SYSTEM_ACTOR,
                source=PROVIDER_SOURCE,
            )
            session.commit()
            new += recorded
    return new
