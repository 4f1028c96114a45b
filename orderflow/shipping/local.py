"""The local shipping provider: a label PDF drawn with reportlab and a tracking number, both
derived from our shipment id, so buying again for the same shipment gives the same label
(idempotent by construction). Nothing leaves the machine."""

from __future__ import annotations

import hashlib
import io

from reportlab.lib.pagesizes import A6
from reportlab.pdfgen import canvas

from orderflow.shipping.provider import Label, LabelRequest, Quote, TrackingReport

CARRIER = "local"
SERVICE = "standard"


class LocalShippingProvider:
    name = "local"

    def quote(self, request: LabelRequest) -> Quote:
        return Quote(
            f"local_shp_{request.shipment_id}",
            f"local_rate_{request.shipment_id}",
            request.carrier or CARRIER,
            request.service or SERVICE,
        )

    def buy(self, request: LabelRequest, quote: Quote) -> Label:
        tracking_number = tracking_number_for(request.shipment_id)
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
        return []


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
