"""Webhooks duplicated, delayed, reordered, racing the worker's own confirmation, and
forged (signed, for the wrong amount or a foreign intent) while orders flow."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from orderflow.models import OrderEvent
from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem
from tests.invariants import assert_no_double_effects_at_providers
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub, fake_payment_intent, signed_event


def _deliver_events(chaos: ChaosSystem, stripe: StripeStub, stop: threading.Event) -> int:
    """Play Stripe: for every intent, its outcome event, several times, late, out of order;
    customers complete the actions they were asked for. Play an attacker too: signed
    successes of one cent for real intents, and of foreign intents naming real orders."""
    rng, sent, seen = random.Random(11), 0, set[str]()
    with httpx.Client(base_url=f"{chaos.api_url}/api/v1", timeout=10) as api:
        while not stop.is_set():
            events: list[tuple[bytes, str]] = []
            for intent in stripe.payment_intents():
                if intent["id"] in seen:
                    continue
                if intent["status"] == "requires_action":
                    stripe.complete_action(intent["id"], succeed=rng.random() < 0.8)
                    intent = stripe.payment_intent(intent["id"])
                kind = {
                    "succeeded": "payment_intent.succeeded",
                    "requires_payment_method": "payment_intent.payment_failed",
                }.get(intent["status"])
                if kind is None:
                    continue
                seen.add(intent["id"])
                event_id = f"evt_{intent['id']}"
                genuine = stripe.intent_event(
                    kind, intent["id"], STRIPE_WEBHOOK_SECRET, event_id=event_id
                )
                events += [genuine] * rng.randint(1, 3)
                if kind.endswith("succeeded") and rng.random() < 0.3:  # a stale failure too
                    events.append(
                        stripe.intent_event(
                            "payment_intent.payment_failed",
                            intent["id"],
                            STRIPE_WEBHOOK_SECRET,
                            event_id=event_id + "f",
                        )
                    )
                if rng.random() < 0.3:
                    events += _forgeries(intent)
            rng.shuffle(events)
            for payload, signature in events:
                time.sleep(rng.random() * 0.05)
                try:
                    api.post(
                        "/webhooks/stripe",
                        content=payload,
                        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
                    )
                    sent += 1
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
    return sent


def _forgeries(intent: dict[str, Any]) -> list[tuple[bytes, str]]:
    """Signed successes that must pay nothing: one cent for the real intent, and a foreign
    intent naming the same order."""
    order_id = intent["metadata"]["order_id"]
    cent = fake_payment_intent(intent["id"], amount=1, order_id=order_id)
    foreign = fake_payment_intent(
        "pi_forged" + intent["id"][3:], amount=intent["amount"], order_id=order_id
    )
    return [
        signed_event("payment_intent.succeeded", forged, STRIPE_WEBHOOK_SECRET)
        for forged in (cent, foreign)
    ]


def test_webhooks_duplicated_reordered_and_racing_the_worker(
    chaos_with_stubs: ChaosSystem, stripe_stub: StripeStub, sendgrid_stub: SendGridStub
) -> None:
    chaos = chaos_with_stubs
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers()
    stop = threading.Event()
    delivered: list[int] = []
    player = threading.Thread(
        target=lambda: delivered.append(_deliver_events(chaos, stripe_stub, stop)), daemon=True
    )
    player.start()
    shoppers.run(CHAOS_ORDERS)
    time.sleep(3.0)  # let the last actions be completed and announced
    stop.set()
    player.join()
    chaos.settle_and_check(shoppers)
    assert_no_double_effects_at_providers(chaos.database, stripe_stub, sendgrid_stub)
    assert delivered[0] > CHAOS_ORDERS / 2
    with chaos.database.unit_of_work() as session:
        anomalies = session.scalar(
            select(func.count()).select_from(OrderEvent).where(OrderEvent.type == "payment_anomaly")
        )
        session.commit()
    assert anomalies, "the forged events were never played"
