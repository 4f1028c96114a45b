"""ASGI middleware that must see the raw request: the body size limit, NUL characters in the
path or query, repeated query parameters, ``HEAD`` served as ``GET``."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import HEAD_AS_GET, PROBLEM_JSON, problem_body


class BodySizeLimit:
    """Answer 413 to a body larger than ``max_bytes``, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    @property
    def detail(self) -> str:
        return f"the request body exceeds {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Handled by the app's problem handler like any other HTTP error.
                    raise HTTPException(413, self.detail)
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(problem_body(413, self.detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RejectUnusableParameters:
    """Answer 422 to a path or query parameter holding a NUL character (``%00``): PostgreSQL
    cannot store or compare such text, so it would otherwise fail as a 500 at the first
    lookup. Also to a query parameter given more than once: every parameter of this API is
    a single value, and quietly keeping the last of several would act on a request the
    schema does not describe. Bodies are checked by the request models (``RequestBody``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _unusable_parameter(scope)
            if refusal is not None:
                field, message = refusal
                await _send_problem(
                    send,
                    problem_body(
                        422,
                        f"invalid input in {field}",
                        errors=[{"field": field, "message": message}],
                    ),
                )
                return
        await self.app(scope, receive, send)


def _unusable_parameter(scope: Scope) -> tuple[str, str] | None:
    """(field, what is wrong with it), or None."""
    nul = "must not contain NUL characters"
    if "\x00" in scope.get("path", ""):
        return "path", nul
    query = scope.get("query_string", b"").decode("latin-1")
    seen: set[str] = set()
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query", nul
        if name in seen:
            return name, "must be given at most once"
        seen.add(name)
    return None


async def _send_problem(send: Send, problem: dict[str, object]) -> None:
    body = json.dumps(problem).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem["status"],
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadAsGet:
    """Answer ``HEAD`` wherever ``GET`` is answered: the request is served as a ``GET`` and
    the body dropped, its headers (``Content-Length`` included) kept, as RFC 9110 asks.
    The problem handlers still name the method the client sent (``HEAD_AS_GET``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_AS_GET: True}, receive, headers_only)
