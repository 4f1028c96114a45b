"""A stand-in for Shippo's REST API, close enough for the official ``shippo`` SDK: the
endpoints the adapter uses (``POST /shipments`` with rates, ``GET``/``POST /transactions``,
``POST /refunds``, ``GET /tracks/{carrier}/{number}``), ``Authorization: ShippoToken <key>``
(401 otherwise), Shippo's error shape (``{"detail": ...}``), and the faults of
:mod:`tests.stubs.base` (500s, hangs) and ``lose_next_purchase_answer`` (the label is
bought, the answer never arrives). Like Shippo, it takes no idempotency key: two purchases of a rate
are two labels, which :meth:`ShippoStub.labels_for` counts."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from tests.stubs.base import INSTANT, Latency, StubRequest, StubResponse, StubServer

DEFAULT_API_KEY = "shippo_test_orderflow_stub_0123456789"
#: The rates every shipment is offered: (carrier, service token, amount).
RATES = (("usps", "usps_priority", "7.58"), ("ups", "ups_ground", "9.12"))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _address(fields: dict[str, Any]) -> dict[str, Any]:
    return {"is_complete": True, "object_id": "adr_" + secrets.token_hex(8), **fields}


class ShippoStub(StubServer):
    name = "shippo-stub"

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: Latency = INSTANT,
    ) -> None:
        super().__init__(host, port, latency)
        self.api_key = api_key
        self.shipments: dict[str, dict[str, Any]] = {}
        self.rates: dict[str, dict[str, Any]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []
        #: tracking number -> [(shippo status, substatus code | None, RFC 3339 date)]
        self.tracking: dict[str, list[tuple[str, str | None, str]]] = {}
        #: The next purchase buys the label, then hangs without answering.
        self.lose_next_purchase_answer = False
        #: Purchases whose answer was lost so far.
        self.lost_purchase_answers = 0

    def labels_for(self, metadata: str) -> int:
        with self.lock:
            return sum(1 for t in self.transactions if t["metadata"] == metadata)

    def fault_body(self, status: int) -> StubResponse:
        return StubResponse.json(
            status, {"detail": f"Injected HTTP {status}"}, None, {"injected": True}
        )

    def handle(self, request: StubRequest) -> StubResponse:
        if request.header("Authorization") != f"ShippoToken {self.api_key}":
            return StubResponse.json(401, {"detail": "Invalid token."}, note={"authorized": False})
        path = request.path.rstrip("/")
        body = json.loads(request.body or b"{}") if request.method == "POST" else {}
        if (request.method, path) == ("POST", "/transactions"):
            with self.lock:
                answer, lost = self._buy(body)
            if lost:
                # Bought, and the answer never arrives (longer than any client timeout
                # here); waited out of the lock: one lost answer does not stall the others.
                self._stopping.wait(3.0)
            return answer
        with self.lock:
            if (request.method, path) == ("POST", "/shipments"):
                return self._create_shipment(body)
            if (request.method, path) == ("GET", "/transactions"):
                rate = dict(request.query).get("rate")
                found = [
                    t for t in self.transactions if rate is None or t["rate"]["object_id"] == rate
                ]
                return StubResponse.json(200, {"results": found, "next": None, "previous": None})
            if (request.method, path) == ("POST", "/refunds"):
                refund = {"object_id": "ref_" + secrets.token_hex(8), "status": "QUEUED",
                          "transaction": body.get("transaction"), "test": True}  # fmt: skip
                self.refunds.append(refund)
                return StubResponse.json(201, refund)
            if request.method == "GET" and path.startswith("/tracks/"):
                _, _, carrier, number = path.split("/", 3)
                return self._track(carrier, number)
        return StubResponse.json(404, {"detail": "Not found."})

    def _create_shipment(self, body: dict[str, Any]) -> StubResponse:
        if not body.get("address_to", {}).get("country"):
            return StubResponse.json(400, {"address_to": ["This field is required."]})
        shipment_id = "shp_" + secrets.token_hex(12)
        rates = []
        for carrier, token, amount in RATES:
            rate = {
                "object_id": "rate_" + secrets.token_hex(12), "object_owner": "stub",
                "object_created": _now(), "shipment": shipment_id, "amount": amount,
                "amount_local": amount, "currency": "USD", "currency_local": "USD",
                "attributes": [], "carrier_account": "ca_" + carrier, "provider": carrier.upper(),
                "servicelevel": {"name": token, "token": token}, "test": True,
            }  # fmt: skip
            self.rates[rate["object_id"]] = rate
            rates.append(rate)
        shipment = {
            "object_id": shipment_id, "object_owner": "stub", "object_created": _now(),
            "object_updated": _now(), "status": "SUCCESS", "metadata": body.get("metadata", ""),
            "address_from": _address(body["address_from"]),
            "address_to": _address(body["address_to"]), "carrier_accounts": [],
            "messages": [], "parcels": [], "rates": rates, "test": True,
        }  # fmt: skip
        self.shipments[shipment_id] = shipment
        return StubResponse.json(201, shipment, note={"shipment": shipment_id})

    def _buy(self, body: dict[str, Any]) -> tuple[StubResponse, bool]:
        """The purchase's answer, and whether it is to be lost."""
        rate = self.rates.get(str(body.get("rate")))
        if rate is None:
            return StubResponse.json(400, {"rate": ["Rate not found."]}), False
        number = "9400" + str(secrets.randbelow(10**18)).zfill(18)
        transaction = {
            "object_id": "txn_" + secrets.token_hex(12), "object_state": "VALID",
            "object_created": _now(), "object_updated": _now(), "status": "SUCCESS",
            "rate": {"object_id": rate["object_id"], "amount": rate["amount"],
                     "currency": "USD", "provider": rate["provider"],
                     "servicelevel_token": rate["servicelevel"]["token"]},
            "tracking_number": number, "tracking_status": "UNKNOWN",
            "tracking_url_provider": f"https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
            "label_url": f"https://shippo-delivery.example/{number}.pdf",
            "metadata": body.get("metadata", ""), "messages": [], "test": True,
            # Shippo names the API user; the SDK cannot read a transaction without it.
            "created_by": {"first_name": "Orderflow", "last_name": "Stub", "username": "stub"},
        }  # fmt: skip
        self.transactions.append(transaction)
        self.tracking.setdefault(number, [])
        lost = self.lose_next_purchase_answer
        if lost:
            self.lose_next_purchase_answer = False
            self.lost_purchase_answers += 1
        answer = StubResponse.json(201, transaction, note={"transaction": transaction["object_id"]})
        return answer, lost

    def _track(self, carrier: str, number: str) -> StubResponse:
        history = [
            {
                "object_id": f"trk_{i}", "object_created": date, "object_updated": date,
                "status": status, "status_details": f"{status} reported", "status_date": date,
                "substatus": None if sub is None
                else {"code": sub, "text": sub, "action_required": False},
                "location": {"city": "Memphis", "state": "TN", "country": "US"},
            }
            for i, (status, sub, date) in enumerate(self.tracking.get(number, []))
        ]  # fmt: skip
        return StubResponse.json(
            200,
            {"carrier": carrier, "tracking_number": number, "messages": [],
             "tracking_history": history,
             "tracking_status": history[-1] if history else None},
        )  # fmt: skip
