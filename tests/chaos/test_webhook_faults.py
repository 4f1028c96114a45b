"""Webhooks duplicated, delayed, reordered, and racing the worker's own confirmation."""

from __future__ import annotations

import random
import threading
import time

import httpx

from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem
from tests.invariants import assert_no_double_effects_at_providers
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub


def _deliver_events(chaos: ChaosSystem, stripe: StripeStub, stop: threading.Event) -> int:
    """Play Stripe: for every intent, its outcome event, several times, late, out of order;
    customers complete the actions they were asked for."""
    rng, sent, seen = random.Random(11), 0, set[str]()
    with httpx.Client(base_url=f"{chaos.api_url}/api/v1", timeout=10) as api:
        while not stop.is_set():
            events = []
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
                events += [(kind, intent["id"], event_id)] * rng.randint(1, 3)
                if kind.endswith("succeeded") and rng.random() < 0.3:  # a stale failure too
                    events.append(("payment_intent.payment_failed", intent["id"], event_id + "f"))
            rng.shuffle(events)
            for kind, intent_id, event_id in events:
                time.sleep(rng.random() * 0.05)
                payload, signature = stripe.intent_event(
                    kind, intent_id, STRIPE_WEBHOOK_SECRET, event_id=event_id
                )
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
