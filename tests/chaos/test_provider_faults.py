"""The payment and e-mail providers failing: 500, 429, hanging past the client timeout, and
succeeding while the worker dies before it can record the success."""

from __future__ import annotations

import random
import signal
import time

from tests.chaos.conftest import CHAOS_ORDERS, ChaosSystem
from tests.invariants import assert_no_double_effects_at_providers
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub


def test_providers_answer_500_429_and_hang(
    chaos_with_stubs: ChaosSystem, stripe_stub: StripeStub, sendgrid_stub: SendGridStub
) -> None:
    chaos = chaos_with_stubs
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(cancel_every=6)
    stream = shoppers.start(CHAOS_ORDERS)
    for mode in ("500", "429", "hang"):
        time.sleep(0.7)
        stripe_stub.set_mode(mode, seconds=3.0)  # type: ignore[arg-type]
        sendgrid_stub.set_mode(mode, seconds=3.0)  # type: ignore[arg-type]
        time.sleep(1.5)
        stripe_stub.set_mode("ok")
        sendgrid_stub.set_mode("ok")
    stream.join()
    chaos.settle_and_check(shoppers)
    assert_no_double_effects_at_providers(chaos.database, stripe_stub, sendgrid_stub)
    assert stripe_stub.count(faulted=True) > 0


def test_charge_succeeds_but_the_worker_dies_before_recording_it(
    chaos_with_stubs: ChaosSystem, stripe_stub: StripeStub, sendgrid_stub: SendGridStub
) -> None:
    chaos = chaos_with_stubs
    chaos.stock_up()
    chaos.start()
    shoppers = chaos.shoppers(methods=["pm_card_visa"])
    stream = shoppers.start(CHAOS_ORDERS)
    rng = random.Random(5)
    for _ in range(4):
        time.sleep(0.5)
        # The provider charges, then holds its answer; the worker waiting for it is killed.
        stripe_stub.hang_next(2, seconds=4.0, path="/v1/payment_intents", after_processing=True)
        time.sleep(0.8)
        if rng.random() < 0.7:  # the charges' worker: threads, so the whole process
            chaos.processes.kill("worker-io", signal.SIGKILL)
            chaos.processes.restart("worker-io")
    stream.join()
    chaos.settle_and_check(shoppers)
    assert_no_double_effects_at_providers(chaos.database, stripe_stub, sendgrid_stub)
    assert stripe_stub.count("POST", "/v1/payment_intents", replayed=True) > 0
