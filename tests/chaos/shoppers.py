"""Concurrent checkout clients that keep going through faults: each order has its own
Idempotency-Key and is retried with it on a lost connection, a 5xx or a 409 "in flight",
exactly as a careful checkout client would."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tests.conftest import order_body

MIXED_METHODS = ["pm_card_visa"] * 6 + [
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_authenticationRequired",
]


@dataclass
class Shoppers:
    api_url: str
    tokens: Sequence[str]
    product_ids: Sequence[str]
    methods: Sequence[str] = field(default_factory=lambda: MIXED_METHODS)
    cancel_every: int = 0
    give_up_after: float = 90.0
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> order id
    refused: int = 0
    retried: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, orders: int, concurrency: int = 12, seed: int = 7, first: int = 0) -> None:
        """Place orders ``first`` to ``first + orders - 1`` (each index its own key)."""
        rng = random.Random(seed)
        plans = [self._plan(rng, index) for index in range(first, first + orders)]
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(self._place, plans))

    def start(self, orders: int, concurrency: int = 12) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(orders, concurrency), daemon=True)
        thread.start()
        return thread

    def _plan(self, rng: random.Random, index: int) -> tuple[str, str, dict[str, object]]:
        lines = [(pid, rng.randint(1, 2)) for pid in rng.sample(list(self.product_ids), 2)]
        body = order_body(*lines, payment_method=rng.choice(list(self.methods)))
        return f"chaos-{index}", self.tokens[index % len(self.tokens)], body

    def _place(self, plan: tuple[str, str, dict[str, object]]) -> None:
        key, token, body = plan
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        deadline = time.monotonic() + self.give_up_after
        with httpx.Client(base_url=f"{self.api_url}/api/v1", headers=headers, timeout=10) as api:
            while time.monotonic() < deadline:
                try:
                    answer = api.post("/orders", json=body)
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 201:
                    self._accept(key, answer.json()["id"], api)
                    return
                if answer is not None and _final_refusal(answer):
                    with self._lock:
                        self.refused += 1
                    return
                with self._lock:
                    self.retried += 1
                time.sleep(0.2)
        raise AssertionError(f"order {key} was never answered")

    def _accept(self, key: str, order_id: str, api: httpx.Client) -> None:
        with self._lock:
            previous = self.accepted.setdefault(key, order_id)
            count = len(self.accepted)
        assert previous == order_id, f"{key} answered with two orders"
        if self.cancel_every and count % self.cancel_every == 0:
            # A lost answer: the customer gave up on cancelling, and the order goes on.
            with contextlib.suppress(httpx.TransportError):
                api.delete(f"/orders/{order_id}")


def _final_refusal(answer: httpx.Response) -> bool:
    """A 4xx that retrying cannot change (stock already short); not a 409 "in flight"."""
    if answer.status_code == 409:
        return bool(answer.json().get("type") == "/problems/insufficient-stock")
    return 400 <= answer.status_code < 500
