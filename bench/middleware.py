"""What each layer in front of a route costs: ``python -m bench.middleware``.

Every ASGI middleware the API installs (``api.app.create_app``), and the app-wide
``strict_request`` dependency, timed one at a time around an endpoint that does nothing
(it reads the body and answers 201 with the headers ``POST /orders`` answers with), on the
request a client of ``POST /orders`` sends. One process, no server, no database: the
microseconds each layer adds to every request, CPU time, the empty endpoint's own cost
subtracted. The layers are built by the app itself (``create_app``), so what is measured
is what runs. ``--requests`` per layer, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.common import JWT_SECRET, table, write_raw

BODY = json.dumps(
    {
        "items": [{"product_id": "prod_" + "a" * 22, "quantity": 2}],
        "shipping_address": {"name": "Jane Doe", "line1": "123 Main St", "city": "New York",
                             "state": "NY", "postal_code": "10001", "country": "US"},
        "payment_method": "pm_card_visa",
    }
).encode()  # fmt: skip
ANSWER = b'{"id": "ord_x", "status": "pending"}'


def order_scope() -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/orders",
        "raw_path": b"/api/v1/orders",
        "root_path": "",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", b"Bearer " + b"x" * 200),
            (b"content-type", b"application/json"),
            (b"idempotency-key", b"run-1-2-3"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "state": {},
    }


async def empty_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body, answers 201 as ``POST /orders`` does (type, length, location)."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ANSWER)).encode()),
                (b"location", b"/api/v1/orders/ord_x"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


async def call(app: ASGIApp) -> None:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        return None

    await app(order_scope(), receive, send)


async def timed(app: ASGIApp, requests: int, repeats: int) -> float:
    """Best CPU microseconds a request over ``repeats`` runs of ``requests``."""
    for _ in range(200):
        await call(app)
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(requests):
            await call(app)
        best = min(best, (time.process_time() - started) / requests)
    return best * 1e6


def layers(app: Any) -> list[tuple[str, Callable[[ASGIApp], ASGIApp]]]:
    """Each middleware of the built app, as a factory around another ASGI app."""
    found = []
    for middleware in app.user_middleware:
        cls, args, kwargs = middleware.cls, middleware.args, middleware.kwargs

        def factory(inner: ASGIApp, cls: Any = cls, args: Any = args, kw: Any = kwargs) -> Any:
            return cls(inner, *args, **kw)

        found.append((cls.__name__, factory))
    return found


def strict_layer(app: Any) -> ASGIApp:
    """The app-wide dependency ``strict_request`` on the real ``POST /orders`` route."""
    from starlette.requests import Request

    from api.routers import orders
    from api.strict import strict_request

    route = next(
        r
        for r in orders.router.routes
        if getattr(r, "path", "") == "/orders" and "POST" in getattr(r, "methods", ())
    )

    async def checked(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request({**scope, "route": route}, receive)
        await strict_request(request)
        body = await request.body()

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await empty_endpoint(scope, replay, send)

    return checked


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from api.app import create_app
    from orderflow.logging import configure_logging
    from orderflow.settings import Settings

    settings = Settings(jwt_secret=JWT_SECRET, log_json=True)
    configure_logging(settings)
    logging.getLogger().handlers[0].stream = open("/dev/null", "w")  # type: ignore[attr-defined]  # noqa: SIM115
    app = create_app(settings)
    results: dict[str, float] = {}

    async def run() -> None:
        base = await timed(empty_endpoint, args.requests, args.repeats)
        results["empty endpoint (subtracted below)"] = base
        whole: ASGIApp = empty_endpoint
        for name, factory in layers(app):
            results[name] = await timed(factory(empty_endpoint), args.requests, args.repeats) - base
            whole = factory(whole)
        results["strict_request (dependency)"] = (
            await timed(strict_layer(app), args.requests, args.repeats) - base
        )
        results["all middleware together"] = await timed(whole, args.requests, args.repeats) - base

    asyncio.run(run())
    return {"microseconds": results, "requests": args.requests, "repeats": args.repeats}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.middleware", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="middleware", help="raw figures file name")
    args = parser.parse_args(argv)
    figures = measure(args)
    rows = [[name, value] for name, value in figures["microseconds"].items()]
    print("CPU microseconds a POST /orders request, each layer alone (best of the repeats)")
    print(table(["layer", "µs"], rows))
    print(f"raw figures: {write_raw(args.name, figures)}")
    return figures


if __name__ == "__main__":
    main()
