"""The stand-ins as a process of their own: ``python -m tests.stubs.serve``.

For benchmarks (``bench.pipeline --provider-latency``) and trying the real adapters by hand:
Stripe, SendGrid and Shippo stand-ins on fixed ports with a latency profile, until SIGTERM or
Ctrl-C. Run apart from the process that drives the load, so that the stand-ins' own work
(parsing, JSON, sleeping threads) never shares an interpreter lock with it.

    python -m tests.stubs.serve --latency realistic --stripe-port 12111 \\
        --sendgrid-port 12112 --shippo-port 12113

It prints one JSON line when every server listens: each one's URL and API key.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from tests.stubs.base import INSTANT, Latency, StubServer
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.shippo_server import ShippoStub
from tests.stubs.stripe_server import StripeStub

#: Latency profiles by name: what each provider takes to answer (issue 20's figures: a
#: PaymentIntent created and confirmed in a few hundred ms, a SendGrid send about 150 ms, a
#: Shippo label about a second).
PROFILES: dict[str, dict[str, Latency]] = {
    "instant": {"stripe": INSTANT, "sendgrid": INSTANT, "shippo": INSTANT},
    "realistic": {
        "stripe": Latency(0.300, 0.100),
        "sendgrid": Latency(0.150, 0.050),
        "shippo": Latency(1.000, 0.250),
    },
}


def build(profile: dict[str, Latency], ports: dict[str, int]) -> dict[str, StubServer]:
    return {
        "stripe": StripeStub(port=ports["stripe"], latency=profile["stripe"]),
        "sendgrid": SendGridStub(port=ports["sendgrid"], latency=profile["sendgrid"]),
        "shippo": ShippoStub(port=ports["shippo"], latency=profile["shippo"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.stubs.serve", description=__doc__)
    parser.add_argument("--latency", choices=sorted(PROFILES), default="instant")
    for name in ("stripe", "sendgrid", "shippo"):
        parser.add_argument(f"--{name}-port", type=int, default=0)
    args = parser.parse_args(argv)
    ports = {name: getattr(args, f"{name}_port") for name in ("stripe", "sendgrid", "shippo")}
    servers = build(PROFILES[args.latency], ports)
    stop = threading.Event()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, interrupt)
    for server in servers.values():
        server.start()
    shown = {
        name: {"url": server.url, "api_key": getattr(server, "api_key", ""),
               "latency": str(server.latency)}
        for name, server in servers.items()
    }  # fmt: skip
    print(json.dumps(shown), flush=True)
    try:
        stop.wait()
    finally:
        for server in servers.values():
            server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
