"""The local shipping provider: a label PDF drawn with reportlab and a tracking number, both
derived from our shipment id, so buying again for the same shipment gives the same label
(idempotent by construction). Nothing leaves the machine.

With a :class:`LocalCarrier` (what ``shipping_provider_from_settings`` builds) the parcels
it labels are carried by a simulated carrier: tracked for the first time, a parcel is picked
up; one step later it is ``in_transit``, two steps later ``out_for_delivery``, three steps
later ``delivered``. ``track`` answers that history as a real carrier would (oldest first,
each report dated when it happened, the same dates every time), so the usual tracking path
(``fulfilment.tracking.refresh_tracking``) applies it with the usual rules: deduplicated,
never backwards. The carrier keeps its parcels as files under ``<state_dir>/carrier``, like
the local payment provider its intents, so every process on the machine sees them."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reportlab.lib.pagesizes import A6
from reportlab.pdfgen import canvas

from orderflow.files import write_atomically
from orderflow.shipping.provider import Label, LabelRequest, Quote, TrackingReport
from orderflow.statuses import ShipmentStatus

CARRIER = "local"
SERVICE = "standard"
#: What the simulated carrier reports after pick-up, one step apart.
WALK = (ShipmentStatus.IN_TRANSIT, ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.DELIVERED)
_TRACKING_NUMBER = re.compile(r"^LOC[0-9]{20}$")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalCarrier:
    """The simulated carrier: the parcels handed to it (one file each, written when their
    label is issued) and when each was picked up (a second file, created once: the first
    process to track a parcel fixes its pick-up time for every other)."""

    def __init__(
        self, directory: Path, step: timedelta, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        if step <= timedelta(0):
            raise ValueError("the carrier's step must be positive")
        self.directory, self.step, self.clock = directory, step, clock

    def hand_over(self, request: LabelRequest, tracking_number: str) -> None:
        """The parcel of a label just issued (again, after a lost answer: same file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"shipment_id": request.shipment_id, "order_id": request.order_id,
                  "issued_at": self.clock().isoformat()}  # fmt: skip
        write_atomically(self._path(tracking_number, "json"), json.dumps(record).encode())

    def history(self, tracking_number: str) -> list[TrackingReport]:
        """What the carrier saw of the parcel so far; nothing for a parcel it never got."""
        if not _TRACKING_NUMBER.match(tracking_number):
            return []
        if not self._path(tracking_number, "json").exists():
            return []
        picked_up = self._picked_up_at(tracking_number)
        now = self.clock()
        reports = []
        for index, status in enumerate(WALK, start=1):
            at = picked_up + index * self.step
            if at > now:
                break
            reports.append(
                TrackingReport(status, at, "local depot", status.value.replace("_", " "))
            )
        return reports

    def _picked_up_at(self, tracking_number: str) -> datetime:
        path = self._path(tracking_number, "pickup")
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(self.clock().isoformat())
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):  # another process was first
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        return datetime.fromisoformat(path.read_text())

    def _path(self, tracking_number: str, suffix: str) -> Path:
        return self.directory / f"{tracking_number}.{suffix}"


class LocalShippingProvider:
    name = "local"

    def __init__(self, carrier: LocalCarrier | None = None) -> None:
        #: None: labels only; nothing ever moves a parcel (``track`` answers nothing).
        self.carrier = carrier

    def quote(self, request: LabelRequest) -> Quote:
        return Quote(
            f"local_shp_{request.shipment_id}",
            f"local_rate_{request.shipment_id}",
            request.carrier or CARRIER,
            request.service or SERVICE,
        )

    def buy(self, request: LabelRequest, quote: Quote) -> Label:
        tracking_number = tracking_number_for(request.shipment_id)
        if self.carrier is not None:
            self.carrier.hand_over(request, tracking_number)
        return Label(
            provider_label_id=f"local_label_{request.shipment_id}",
            carrier=quote.carrier or CARRIER,
            service=quote.service or SERVICE,
            tracking_number=tracking_number,
            tracking_url=None,
            label_url=None,
            pdf=label_pdf(request, tracking_number),
        )

    def void(self, label: Label | str) -> None:
        return None

    def track(self, carrier: str, tracking_number: str) -> list[TrackingReport]:
        return [] if self.carrier is None else self.carrier.history(tracking_number)


def tracking_number_for(shipment_id: str) -> str:
    digest = hashlib.sha256(shipment_id.encode()).hexdigest()
    return "LOC" + str(int(digest[:16], 16)).zfill(20)[:20]


def label_pdf(request: LabelRequest, tracking_number: str) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A6, invariant=True)
    height = A6[1]
    address = request.address_to
    lines = [
        "SHIP TO",
        str(address.get("name", "")),
        str(address.get("line1", "")),
        *([str(address["line2"])] if address.get("line2") else []),
        f"{address.get('postal_code', '')} {address.get('city', '')} {address.get('state') or ''}",
        str(address.get("country", "")),
        "",
        f"Tracking {tracking_number}",
        f"Shipment {request.shipment_id}",
        f"Order {request.order_id}",
        f"{request.units} unit(s)",
    ]
    y = height - 30
    for text in lines:
        page.drawString(20, y, text)
        y -= 14
    page.showPage()
    page.save()
    return out.getvalue()
