"""Browsers on other origins: who may write with the auth cookie (the cross-site request
check, against CSRF) and who may read answers (CORS).

**Writes.** A state-changing request (any method but GET, HEAD and OPTIONS) authenticated by
a cookie (``orderflow_access``, or ``orderflow_refresh`` on ``POST /auth/refresh``) rather
than an ``Authorization: Bearer`` token must name where it comes from, in ``Origin`` or,
failing that, ``Referer``, and that origin must be this API's own or one in
``ORDERFLOW_CORS_ORIGINS``; otherwise 403 problem+json before the route does anything. This
is OWASP's "verify the origin with standard headers": browsers send ``Origin`` on every
cross-origin write (and on same-origin ones) and no page can forge it, whereas a bearer token
is never attached by a browser on its own, so bearer callers are not concerned. The check
sits where a cookie becomes a caller (``api.deps.access_token_of``, the refresh route), so
every route that takes the cookie has it and a request that the cookie does not
authenticate (register, login, a webhook) is not refused for a cookie it happens to carry.

**Login** refuses a foreign ``Origin`` (or ``Referer``) too: otherwise a page could log its
visitor into the attacker's account (login CSRF) and read what they then order and where it
goes. A login naming no origin at all is a script or an app, and is taken.

**The API's own origin** is the request's scheme (``https`` only when uvicorn is told so by
a trusted proxy: ``--proxy-headers``) with its ``Host`` header, the address the browser used.

**Reads.** Starlette's CORS middleware answers for the allowed origins only, with
credentials; any other origin gets no CORS header at all, and its preflight a 403.
"""

from __future__ import annotations

from typing import NoReturn

import structlog
from fastapi import Depends, FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Message, Send

from api.observability import REQUEST_ID_HEADER
from api.problems import problem
from orderflow.errors import Forbidden
from orderflow.origins import origin_of
from orderflow.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What a front end on an allowed origin may send and read besides the CORS-safelisted ones.
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER)
EXPOSED_HEADERS = ("Location", "Retry-After", "Idempotent-Replayed", REQUEST_ID_HEADER)

log = structlog.get_logger("api.cross_origin")


class CrossSiteRequest(Forbidden):
    slug, title = "cross-site-request", "Cross-site request refused"


def check_cookie_request(request: Request) -> None:
    """For a request a cookie authenticates: a write must name a trusted origin."""
    if request.method in SAFE_METHODS:
        return
    source, claimed = _claimed_origin(request.headers)
    if source is None:
        _refuse(
            request,
            "a request authenticated by cookie must send Origin (or Referer); "
            "a script sends Authorization: Bearer instead",
        )
    _check_trusted(request, source, claimed)


async def no_foreign_origin(request: Request) -> None:
    """A dependency: a request naming an origin must name a trusted one (login CSRF)."""
    source, claimed = _claimed_origin(request.headers)
    if source is not None:
        _check_trusted(request, source, claimed)


NoForeignOrigin = Depends(no_foreign_origin)


def _check_trusted(request: Request, source: str, claimed: str | None) -> None:
    settings: Settings = request.app.state.settings
    if claimed is not None and (
        claimed in settings.cors_origins or claimed == _own_origin(request)
    ):
        return
    sent = (request.headers.get(source) or "")[:200]
    _refuse(
        request,
        f"{source.title()} {sent!r} is neither this API's origin nor in "
        "ORDERFLOW_CORS_ORIGINS: a page of another site may not act here for its visitor",
    )


def _refuse(request: Request, detail: str) -> NoReturn:
    log.warning(
        "cross-site request refused", method=request.method, path=request.url.path, detail=detail
    )
    raise CrossSiteRequest(detail)


def _claimed_origin(headers: Headers) -> tuple[str | None, str | None]:
    """(the header that says where the request comes from, ``Origin`` or failing that
    ``Referer``, None when it sent neither; the origin it names, None when it names none,
    as ``Origin: null`` does)."""
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value is not None:
            return name, origin_of(value)
    return None, None


def _own_origin(request: Request) -> str | None:
    host = request.headers.get("host")
    return origin_of(f"{request.url.scheme}://{host}") if host else None


def install_cors(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        _Cors,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
    )


class _Cors(CORSMiddleware):
    """Starlette's CORS middleware, except that an origin not allowed gets no CORS header at
    all (Starlette's still sends it ``Allow-Credentials``, ``Expose-Headers`` and, on a
    preflight, the allowed methods and headers), and a refused preflight is problem+json."""

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] == "http.response.start"
            and origin is not None
            and not self.is_allowed_origin(origin=origin)
        ):
            message.setdefault("headers", [])
            MutableHeaders(scope=message).add_vary_header("Origin")
            await send(message)
            return
        await super().send(message, send, request_headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        if not self.is_allowed_origin(origin=request_headers["origin"]):
            refused = problem(
                403,
                "this origin is not in ORDERFLOW_CORS_ORIGINS",
                slug="cors-origin-refused",
                title="Origin not allowed",
            )
        else:
            answer = super().preflight_response(request_headers)
            if answer.status_code == 200:
                return answer
            # Starlette's reason, "Disallowed CORS method, headers": say it as a problem.
            refused = problem(400, f"preflight refused: {bytes(answer.body).decode()}")
        refused.headers["Vary"] = "Origin"
        return refused
