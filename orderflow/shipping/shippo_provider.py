"""Shippo through its official SDK (``shippo`` on PyPI).

Shippo takes no idempotency key. A label is bought once per shipment all the same: the
rate is chosen first (``quote``) and kept with our shipment before anything is bought; the
purchase then first lists the transactions of that rate (``GET /transactions?rate=``) and
returns a successful one if a lost answer (a timeout, a worker that died) had bought it.
Our shipment id travels as ``metadata`` on both the shipment and the transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import requests
import shippo
from shippo.models import components, errors, operations

from orderflow.shipping.provider import (
    Label,
    LabelRequest,
    Quote,
    ShippingProviderUnavailable,
    ShippingRejected,
    TrackingReport,
)
from orderflow.statuses import ShipmentStatus

T = TypeVar("T")

#: Shippo's tracking statuses as ours; TRANSIT with the ``out_for_delivery`` substatus is
#: out for delivery, UNKNOWN says nothing.
_STATUSES = {
    "PRE_TRANSIT": ShipmentStatus.LABEL_CREATED,
    "TRANSIT": ShipmentStatus.IN_TRANSIT,
    "DELIVERED": ShipmentStatus.DELIVERED,
    "RETURNED": ShipmentStatus.RETURNED_TO_SENDER,
    "FAILURE": ShipmentStatus.FAILURE,
}


class _TimeoutSession(requests.Session):
    """The SDK sends without a timeout; every request gets ours."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().send(request, **kwargs)


class ShippoShippingProvider:
    name = "shippo"

    def __init__(
        self,
        api_key: str,
        *,
        address_from: dict[str, str],
        api_base: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.client = shippo.Shippo(
            api_key_header=f"ShippoToken {api_key}",
            server_url=api_base,
            client=_TimeoutSession(timeout),
        )
        self.address_from = address_from

    def quote(self, request: LabelRequest) -> Quote:
        to = request.address_to
        created = _call(
            lambda: self.client.shipments.create(
                components.ShipmentCreateRequest(
                    address_from=components.AddressCreateRequest(**self.address_from),
                    address_to=components.AddressCreateRequest(
                        name=to.get("name"),
                        street1=to.get("line1"),
                        street2=to.get("line2"),
                        city=to.get("city"),
                        state=to.get("state"),
                        zip=to.get("postal_code"),
                        country=str(to.get("country", "")),
                    ),
                    parcels=[
                        components.ParcelCreateRequest(
                            mass_unit=components.WeightUnitEnum.LB,
                            weight=str(max(1, request.units)),
                            distance_unit=components.DistanceUnitEnum.IN,
                            height="6",
                            length="10",
                            width="8",
                        )
                    ],
                    metadata=request.shipment_id,
                    async_=False,
                )
            )
        )
        rates = list(created.rates or [])
        if request.carrier:
            rates = [r for r in rates if r.provider.lower() == request.carrier.lower()]
        if request.service:
            rates = [r for r in rates if (r.servicelevel.token or "") == request.service]
        if not rates or created.object_id is None:
            raise ShippingRejected(f"no rate for shipment {request.shipment_id}")
        cheapest = min(rates, key=lambda rate: float(rate.amount))
        return Quote(
            created.object_id, cheapest.object_id, cheapest.provider, cheapest.servicelevel.token
        )

    def buy(self, request: LabelRequest, quote: Quote) -> Label:
        found = _call(
            lambda: self.client.transactions.list(
                operations.ListTransactionsRequest(rate=quote.rate_id)
            )
        )
        for transaction in found.results or []:
            if _status(transaction) == "SUCCESS":
                return _label(transaction, quote)
        bought = _call(
            lambda: self.client.transactions.create(
                components.TransactionCreateRequest(
                    rate=quote.rate_id,
                    async_=False,
                    label_file_type=components.LabelFileTypeEnum.PDF,
                    metadata=request.shipment_id,
                )
            )
        )
        if _status(bought) != "SUCCESS":
            messages = "; ".join(str(m.text) for m in bought.messages or [])
            raise ShippingRejected(f"label not bought: {messages or _status(bought)}")
        return _label(bought, quote)

    def void(self, label: Label | str) -> None:
        label_id = label if isinstance(label, str) else label.provider_label_id
        _call(lambda: self.client.refunds.create(transaction=label_id, async_=False))

    def track(self, carrier: str, tracking_number: str) -> list[TrackingReport]:
        track = _call(lambda: self.client.tracking_status.get(tracking_number, carrier))
        history = list(track.tracking_history or [])
        if track.tracking_status is not None:
            history.append(track.tracking_status)
        reports = []
        for entry in history:
            status = _STATUSES.get(_enum_value(entry.status))
            if status is None or entry.status_date is None:
                continue
            substatus = entry.substatus.code if entry.substatus is not None else None
            if status is ShipmentStatus.IN_TRANSIT and substatus == "out_for_delivery":
                status = ShipmentStatus.OUT_FOR_DELIVERY
            location = entry.location
            where = None
            if location is not None:
                where = ", ".join(p for p in (location.city, location.state, location.country) if p)
            reports.append(
                TrackingReport(status, entry.status_date, where or None, entry.status_details)
            )
        return sorted(set(reports), key=lambda r: (r.occurred_at, r.status.value))


def _label(transaction: components.Transaction, quote: Quote) -> Label:
    if transaction.object_id is None or transaction.tracking_number is None:
        raise ShippingRejected("the provider answered a label without id or tracking number")
    return Label(
        provider_label_id=transaction.object_id,
        carrier=quote.carrier or "shippo",
        service=quote.service,
        tracking_number=transaction.tracking_number,
        tracking_url=transaction.tracking_url_provider,
        label_url=transaction.label_url,
        pdf=None,
    )


def _status(transaction: components.Transaction) -> str:
    return _enum_value(transaction.status)


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _call(call: Callable[[], T]) -> T:
    """One SDK call; transport errors, 5xx and 429 are the provider being unavailable,
    other 4xx a refusal."""
    try:
        return call()
    except errors.SDKError as error:
        if error.status_code >= 500 or error.status_code == 429:
            raise ShippingProviderUnavailable(f"shippo answered {error.status_code}") from error
        raise ShippingRejected(f"shippo refused: {error.status_code} {error.body[:200]}") from error
    except requests.RequestException as error:
        raise ShippingProviderUnavailable(f"shippo unreachable: {type(error).__name__}") from error
