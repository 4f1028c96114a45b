"""The provider stand-ins (tests/stubs) on a host of their own, answering as slowly as the
real providers do.

The latency is added by the stand-in before it handles a request (each request has its own
thread, so waits overlap as they do at a real provider): this machine's kernel has no
``netem`` to delay the link instead. Stripe 300 ± 100 ms, SendGrid 150 ± 50 ms (issue 20's
"realistic"), Shippo's label purchase 1 ± 0.3 s; ``ORDERFLOW_HOSTS_LATENCY=0`` makes them
instant."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.hosts.network import Lab
from tests.stubs import stub_provider_env
from tests.stubs.base import StubRequest, StubResponse
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.shippo_server import ShippoStub
from tests.stubs.stripe_server import StripeStub

#: Seconds: (mean, jitter), uniformly spread over mean ± jitter.
STRIPE_LATENCY = (0.300, 0.100)
SENDGRID_LATENCY = (0.150, 0.050)
SHIPPO_LATENCY = (1.0, 0.3)


def _scale() -> float:
    return float(os.environ.get("ORDERFLOW_HOSTS_LATENCY", "1"))


def _wait(latency: tuple[float, float]) -> None:
    mean, jitter = latency
    time.sleep(max(0.0, random.uniform(mean - jitter, mean + jitter) * _scale()))


class SlowStripe(StripeStub):
    def handle(self, request: StubRequest) -> StubResponse:
        _wait(STRIPE_LATENCY)
        return super().handle(request)


class SlowSendGrid(SendGridStub):
    def handle(self, request: StubRequest) -> StubResponse:
        _wait(SENDGRID_LATENCY)
        return super().handle(request)


class SlowShippo(ShippoStub):
    def handle(self, request: StubRequest) -> StubResponse:
        _wait(SHIPPO_LATENCY)
        return super().handle(request)


@dataclass
class StandIns:
    stripe: StripeStub
    sendgrid: SendGridStub
    shippo: ShippoStub

    def env(self) -> dict[str, str]:
        return {
            **stub_provider_env(self.stripe, self.sendgrid),
            "ORDERFLOW_SHIPPING_PROVIDER": "shippo",
            "ORDERFLOW_SHIPPO_API_KEY": self.shippo.api_key,
            "ORDERFLOW_SHIPPO_API_BASE": self.shippo.url,
        }

    def reset(self) -> None:
        self.stripe.reset()
        self.sendgrid.reset()
        with self.shippo.lock:
            self.shippo.transactions.clear()
        self.shippo.reset_requests()


@contextmanager
def stand_ins_on(lab: Lab, host: str) -> Iterator[StandIns]:
    """Both stand-ins listening on ``host``'s address (their sockets are made there)."""
    address = lab.hosts[host].address
    stand_ins = StandIns(
        SlowStripe(host=address), SlowSendGrid(host=address), SlowShippo(host=address)
    )
    servers = (stand_ins.stripe, stand_ins.sendgrid, stand_ins.shippo)
    with lab.inside(host):
        for server in servers:
            server.start()
    try:
        yield stand_ins
    finally:
        for server in servers:
            server.stop()
