"""The receiver of ``bench.webhooks``: ``uvicorn bench.webhook_receiver:create_app --factory``.

A bare ASGI app (no framework: the receiver should cost as little as it can) that answers
every POST ``200`` at once and notes, in memory, when each delivery arrived (epoch seconds)
with its ``webhook-id`` and the path it came to. ``GET /arrivals`` answers what it noted as
JSON ``[[path, webhook_id, at], ...]``; ``DELETE /arrivals`` forgets it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app() -> App:
    arrivals: list[tuple[str, str, float]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the body (and drop it): the sender waits for that
            message = await receive()
            more = bool(message.get("more_body"))
        at = time.time()
        method, path = scope["method"], scope["path"]
        body = b"ok"
        if method == "POST":
            headers = dict(scope["headers"])
            arrivals.append((path, headers.get(b"webhook-id", b"").decode(), at))
        elif method == "GET" and path == "/arrivals":
            body = json.dumps(arrivals).encode()
        elif method == "DELETE" and path == "/arrivals":
            arrivals.clear()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
