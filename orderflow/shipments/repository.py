"""Every statement on shipments, their lines, their tracking history and their labels, in the
caller's transaction (never commits). The order row itself is ``OrderRepository``'s: whoever
changes a shipment locks its order first (``OrderRepository.lock_for_update``), then the
shipment, always in that order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from orderflow.errors import NotFound
from orderflow.models import (
    OrderLine,
    Shipment,
    ShipmentEvent,
    ShipmentLabel,
    ShipmentLine,
    table_of,
)
from orderflow.pagination import Page, paginate
from orderflow.shipments.state import TERMINAL, UNDER_WAY, LineProgress
from orderflow.statuses import LabelStatus, ShipmentStatus

#: Statuses of a parcel a carrier still has to report on.
CARRIED = frozenset(ShipmentStatus) - TERMINAL - {ShipmentStatus.PENDING}


@dataclass(frozen=True)
class TrackingUpdate:
    """One tracking update as reported: a status at a time, where, and what was said."""

    status: ShipmentStatus
    occurred_at: datetime
    location: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class UnitsOut:
    """Units of one order line out with the customer: under way (in transit or later), and
    of those still returnable (``ShipmentRepository.units_out``)."""

    shipped: int
    returnable: int


class ShipmentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- reading ----------------------------------------------------------------------------

    def get(self, shipment_id: str) -> Shipment | None:
        return self.session.get(Shipment, shipment_id)

    def require(self, shipment_id: str) -> Shipment:
        shipment = self.get(shipment_id)
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} does not exist", shipment_id=shipment_id)
        return shipment

    def lock(self, shipment_id: str) -> Shipment:
        """The shipment row, locked and freshly read (its order's lock taken first)."""
        shipment = self.session.scalar(_LOCK_SHIPMENT, {"shipment_id": shipment_id})
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} does not exist", shipment_id=shipment_id)
        return shipment

    def of_order(self, order_id: str) -> list[Shipment]:
        """Oldest first (ids sort by creation time)."""
        return list(self.session.scalars(_OF_ORDER, {"order_id": order_id}))

    def page(self, order_id: str, limit: int, offset: int) -> Page[Shipment]:
        query = select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.id)
        return paginate(self.session, query, limit, offset)

    def by_tracking_number(self, tracking_number: str) -> list[Shipment]:
        return list(
            self.session.scalars(
                select(Shipment)
                .where(Shipment.tracking_number == tracking_number)
                .order_by(Shipment.id)
            )
        )

    def shipped_by_line(self, order_id: str) -> dict[int, int]:
        """Units of each order line in the order's shipments that are not cancelled: what
        counts against the ordered quantity. Read under the order's lock."""
        rows = self.session.execute(_SHIPPED_BY_LINE, {"order_id": order_id}).all()
        return {int(row[0]): int(row[1]) for row in rows}

    def lines_ever_in_shipments(self, order_id: str) -> set[int]:
        """Ids of the order's lines named by any of its shipments, cancelled ones included."""
        rows: Sequence[int] = self.session.scalars(
            select(_shipment_lines.c.order_line_id)
            .join(_shipments, _shipments.c.id == _shipment_lines.c.shipment_id)
            .where(_shipments.c.order_id == order_id)
        ).all()
        return {int(row) for row in rows}

    def progress(self, order_id: str) -> list[LineProgress]:
        """Per order line: ordered, under way and delivered units."""
        rows = self.session.execute(_PROGRESS, {"order_id": order_id}).all()
        return [LineProgress(int(row[0]), int(row[1]), int(row[2])) for row in rows]

    def units_out(self, order_id: str, since: datetime) -> dict[int, UnitsOut]:
        """Per order line, units of shipments under way (what a return is measured against)
        and, of those, the units a customer may still return: not sent back to us by the
        carrier, and delivered (or, while delivery is unknown, shipped) at ``since`` or
        later. Read under the order's lock."""
        rows = self.session.execute(_UNITS_OUT, {"order_id": order_id, "since": since}).all()
        return {int(row[0]): UnitsOut(int(row[1]), int(row[2])) for row in rows}

    def stalled_labels(self, cutoff: datetime, limit: int) -> list[tuple[str, str, bool]]:
        """Shipments untouched since ``cutoff`` whose label work is owed: (order id, shipment
        id, True to buy / False to void). A label still to buy on a live shipment; a label
        bought for a cancelled one and not given back yet."""
        buy = select(Shipment.order_id, Shipment.id, literal(True)).where(
            Shipment.label_status == LabelStatus.PENDING,
            Shipment.status != ShipmentStatus.CANCELLED,
            Shipment.updated_at < cutoff,
        )
        void = (
            select(Shipment.order_id, Shipment.id, literal(False))
            .join(ShipmentLabel, ShipmentLabel.shipment_id == Shipment.id)
            .where(
                Shipment.status == ShipmentStatus.CANCELLED,
                ShipmentLabel.voided_at.is_(None),
                Shipment.updated_at < cutoff,
            )
        )
        rows = self.session.execute(buy.union_all(void).limit(limit)).all()
        return [(str(row[0]), str(row[1]), bool(row[2])) for row in rows]

    def carried_by(self, provider: str, limit: int) -> list[str]:
        """Shipments on their way with a label ``provider`` issued and did not take back,
        least recently changed first: the parcels a carrier may still report on."""
        return list(
            self.session.scalars(
                select(Shipment.id)
                .join(ShipmentLabel, ShipmentLabel.shipment_id == Shipment.id)
                .where(
                    ShipmentLabel.provider == provider,
                    ShipmentLabel.voided_at.is_(None),
                    Shipment.label_status == LabelStatus.PURCHASED,
                    Shipment.status.in_(list(CARRIED)),
                )
                .order_by(Shipment.updated_at)
                .limit(limit)
            )
        )

    def count_by_status(self) -> tuple[dict[str, int], dict[str, int]]:
        """Shipments by status and by label status, every status shown (zero if none)."""
        rows = self.session.execute(
            select(Shipment.status, Shipment.label_status, func.count()).group_by(
                Shipment.status, Shipment.label_status
            )
        ).all()
        statuses = {status.value: 0 for status in ShipmentStatus}
        labels = {status.value: 0 for status in LabelStatus}
        for status, label_status, count in rows:
            statuses[ShipmentStatus(status).value] += int(count)
            labels[LabelStatus(label_status).value] += int(count)
        return statuses, labels

    def touch_all(self, shipment_ids: Sequence[str]) -> None:
        if shipment_ids:
            self.session.execute(
                update(_shipments)
                .where(_shipments.c.id.in_(list(shipment_ids)))
                .values(updated_at=func.now())
            )

    def label_of(self, shipment_id: str) -> ShipmentLabel | None:
        return self.session.scalar(
            select(ShipmentLabel)
            .where(ShipmentLabel.shipment_id == shipment_id)
            .execution_options(populate_existing=True)
        )

    # -- writing ----------------------------------------------------------------------------

    def add(self, shipment: Shipment, lines: Sequence[ShipmentLine]) -> Shipment:
        shipment.lines = list(lines)
        shipment.events = []
        self.session.add(shipment)
        self.session.flush()
        return shipment

    def update(self, shipment: Shipment, **changes: Any) -> None:
        written = self.session.execute(_UPDATE_SHIPMENT, {"row_key": shipment.id, **changes}).one()
        for name, value in {**changes, "updated_at": written.updated_at}.items():
            set_committed_value(shipment, name, value)

    def record_update(
        self, shipment: Shipment, update_: TrackingUpdate, *, source: str, applied: bool
    ) -> bool:
        """Append a tracking update to the shipment's history; False (and nothing written)
        if the same status at the same time is there already."""
        inserted = self.session.execute(
            insert(ShipmentEvent)
            .values(
                shipment_id=shipment.id,
                status=update_.status,
                occurred_at=update_.occurred_at,
                location=update_.location,
                description=update_.description,
                source=source,
                applied=applied,
            )
            .on_conflict_do_nothing(constraint="shipment_events_once")
            .returning(ShipmentEvent.id)
        ).first()
        if inserted is not None:
            self.session.expire(shipment, ["events"])
        return inserted is not None

    def has_update(self, shipment_id: str, status: ShipmentStatus, occurred_at: datetime) -> bool:
        return (
            self.session.scalar(
                select(ShipmentEvent.id).where(
                    ShipmentEvent.shipment_id == shipment_id,
                    ShipmentEvent.status == status,
                    ShipmentEvent.occurred_at == occurred_at,
                )
            )
            is not None
        )

    def add_label(self, label: ShipmentLabel) -> None:
        self.session.add(label)
        self.session.flush()


#: First key of the advisory locks of label purchases (the second: the shipment id hashed).
_LABEL_LEASE_CLASS = 16


@contextmanager
def label_purchase_lease(engine: Engine, shipment_id: str) -> Iterator[bool]:
    """Whether this process may buy the shipment's label now: True while it holds the
    shipment's purchase lease, False if another does. The lease is a PostgreSQL session
    advisory lock on a connection of its own, held through the provider calls (no row is
    locked, nobody waits on it); it ends with the block, or with the connection if the
    process dies, so a purchase is never left claimed by a dead worker."""
    with engine.connect() as connection:
        key = {"lease_class": _LABEL_LEASE_CLASS, "shipment_id": shipment_id}
        held = bool(connection.execute(_TRY_LEASE, key).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(_END_LEASE, key)
                connection.commit()


# -- statements, built once -----------------------------------------------------------------

_shipments, _shipment_lines = table_of(Shipment), table_of(ShipmentLine)
_order_lines = table_of(OrderLine)

_LOCK_SHIPMENT = (
    select(Shipment)
    .where(Shipment.id == bindparam("shipment_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_OF_ORDER = (
    select(Shipment)
    .where(Shipment.order_id == bindparam("order_id"))
    .order_by(Shipment.id)
    .execution_options(populate_existing=True)
)
_UPDATE_SHIPMENT = (
    update(_shipments)
    .where(_shipments.c.id == bindparam("row_key"))
    .values(updated_at=func.now())
    .returning(_shipments.c.updated_at)
)
_SHIPPED_BY_LINE = (
    select(_shipment_lines.c.order_line_id, func.sum(_shipment_lines.c.quantity))
    .join(_shipments, _shipments.c.id == _shipment_lines.c.shipment_id)
    .where(
        _shipments.c.order_id == bindparam("order_id"),
        _shipments.c.status != ShipmentStatus.CANCELLED.value,
    )
    .group_by(_shipment_lines.c.order_line_id)
)


def _units_when(condition: Any) -> Any:
    return func.coalesce(func.sum(_shipment_lines.c.quantity).filter(condition), 0)


_live = _shipments.c.status != ShipmentStatus.CANCELLED.value
_PROGRESS = (
    select(
        _order_lines.c.quantity,
        _units_when(_shipments.c.status.in_([status.value for status in UNDER_WAY])),
        _units_when(_shipments.c.status == ShipmentStatus.DELIVERED.value),
    )
    .select_from(
        _order_lines.outerjoin(
            _shipment_lines, _shipment_lines.c.order_line_id == _order_lines.c.id
        ).outerjoin(_shipments, (_shipments.c.id == _shipment_lines.c.shipment_id) & _live)
    )
    .where(_order_lines.c.order_id == bindparam("order_id"))
    .group_by(_order_lines.c.id, _order_lines.c.quantity)
    .order_by(_order_lines.c.id)
)
_lease_key: tuple[Any, Any] = (bindparam("lease_class"), func.hashtext(bindparam("shipment_id")))
_TRY_LEASE = select(func.pg_try_advisory_lock(*_lease_key))
_END_LEASE = select(func.pg_advisory_unlock(*_lease_key))


#: Units out per order line. A shipment's return window opens when it was delivered (the
#: date of the update that said so) or, not delivered yet, when it first went under way.
_UNITS_OUT = text(
    f"""
    SELECT sl.order_line_id,
           coalesce(sum(sl.quantity), 0) AS shipped,
           coalesce(sum(sl.quantity) FILTER (
               WHERE s.status <> '{ShipmentStatus.RETURNED_TO_SENDER.value}'
                 AND CASE WHEN s.status = '{ShipmentStatus.DELIVERED.value}'
                          THEN coalesce(s.status_at, s.updated_at)
                          ELSE coalesce((SELECT min(e.occurred_at) FROM shipment_events e
                                         WHERE e.shipment_id = s.id AND e.applied
                                           AND e.status IN :under_way),
                                        s.status_at, s.updated_at)
                     END >= :since), 0) AS returnable
    FROM shipment_lines sl JOIN shipments s ON s.id = sl.shipment_id
    WHERE s.order_id = :order_id AND s.status IN :under_way
    GROUP BY sl.order_line_id
    """
).bindparams(
    bindparam("under_way", value=sorted(status.value for status in UNDER_WAY), expanding=True)
)
