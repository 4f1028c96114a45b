"""The warehouse at work while hosts fail: as the admin, ship every confirmed order with a
label bought in the pipeline (``POST /orders/{id}/shipments {"buy_label": true}``, one
Idempotency-Key per order, retried on any failure as a careful client does)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from orderflow.auth.service import ensure_admin, login
from orderflow.models import Order, Shipment
from orderflow.statuses import LabelStatus, OrderStatus
from tests.chaos.conftest import ChaosSystem

ADMIN = ("warehouse@example.com", "warehouse-pass-42")


@dataclass
class Warehouse:
    system: ChaosSystem
    shipped: dict[str, str] = field(default_factory=dict)  # order id -> shipment id
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start shipping; call it on the host the API is reached from (``Lab.inside``)."""
        with self.system.database.unit_of_work() as session:
            ensure_admin(session, *ADMIN)
            token = login(session, self.system.settings, *ADMIN).access_token
            session.commit()
        self._thread = threading.Thread(target=self._run, args=(token,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def labels_pending(self) -> int:
        with self.system.database.unit_of_work() as session:
            found = session.scalars(
                select(Shipment.id).where(Shipment.label_status == LabelStatus.PENDING)
            ).all()
            session.commit()
        return len(found)

    def _run(self, token: str) -> None:
        base = f"{self.system.api_url}/api/v1"
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            while not self._stop.is_set():
                for order_id in self._confirmed_not_shipped():
                    try:
                        answer = client.post(
                            f"{base}/orders/{order_id}/shipments",
                            json={"buy_label": True},
                            headers={"Idempotency-Key": f"ship-{order_id}"},
                        )
                    except httpx.TransportError:
                        continue
                    if answer.status_code == 201:
                        self.shipped[order_id] = answer.json()["id"]
                self._stop.wait(1.0)

    def _confirmed_not_shipped(self) -> list[str]:
        with self.system.database.unit_of_work() as session:
            confirmed = session.scalars(
                select(Order.id).where(Order.status == OrderStatus.CONFIRMED)
            ).all()
            session.commit()
        return [order_id for order_id in confirmed if order_id not in self.shipped]
