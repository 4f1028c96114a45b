"""The outermost middleware: a request id for every request, one access log line, and the
HTTP metrics (by route template, never by raw path, so ids do not explode the series).

The request id comes from a valid incoming ``X-Request-ID`` (printable ASCII, at most 128
characters) or is made here; it is bound to the log context for the request (so the
outbox record of any work it causes carries it into the Celery tasks) and returned in the
response's ``X-Request-ID``. A route about one order binds its ``order_id`` too."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderflow import metrics

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]+")
_ORDER_LOCATION = re.compile(r"/orders/(ord_[A-Za-z0-9_-]+)$")
UNMATCHED_ROUTE = "<unmatched>"

access_log = structlog.get_logger("api.access")


def request_id_from(value: str | None) -> str:
    """The client's request id when it is usable, else a new one."""
    if value and len(value) <= MAX_REQUEST_ID_LENGTH and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RouteTemplates:
    """Finds the template of the route a path belongs to (``/api/v1/orders/{order_id}``) and
    its path parameters, from the application's documented paths; built on first use."""

    def __init__(self) -> None:
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def match(self, scope: Scope) -> tuple[str, dict[str, str]]:
        if self._compiled is None:
            self._compiled = self._compile(scope.get("app"))
        path = scope.get("path", "")
        for regex, template in self._compiled:
            found = regex.fullmatch(path)
            if found:
                return template, found.groupdict()
        return UNMATCHED_ROUTE, {}

    @staticmethod
    def _compile(app: Any) -> list[tuple[re.Pattern[str], str]]:
        templates: set[str] = set()
        openapi = getattr(app, "openapi", None)
        if callable(openapi):
            templates.update(openapi().get("paths", {}))
        for route in getattr(app, "routes", ()):  # /docs, /openapi.json
            if isinstance(getattr(route, "path", None), str) and route.path:
                templates.add(route.path)
        # Literal paths win over templated ones (``/orders/mine`` before ``/orders/{id}``).
        ordered = sorted(templates, key=lambda t: (t.count("{"), t))
        return [(re.compile(_regex_of(template)), template) for template in ordered]


def _regex_of(template: str) -> str:
    parts = re.split(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}", template)
    pattern = ""
    for index, part in enumerate(parts):
        pattern += re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
    return pattern


class RequestObservability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get(REQUEST_ID_HEADER))
        route, params = self.routes.match(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if isinstance(params.get("order_id"), str):
            structlog.contextvars.bind_contextvars(order_id=params["order_id"])
        seen: dict[str, Any] = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                seen["status"] = message["status"]
                seen["location"] = headers.get("location")
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, route, seen, time.perf_counter() - started)
            structlog.contextvars.clear_contextvars()

    def _record(self, scope: Scope, route: str, seen: dict[str, Any], elapsed: float) -> None:
        method, status = scope["method"], int(seen["status"])
        metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
        extra: dict[str, Any] = {}
        created = _ORDER_LOCATION.search(seen.get("location") or "")
        if created and "order_id" not in structlog.contextvars.get_contextvars():
            extra["order_id"] = created.group(1)
        client = scope.get("client")
        access_log.info(
            "request",
            method=method,
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            client=client[0] if client else None,
            **extra,
        )
