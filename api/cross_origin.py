"""Browsers on other origins: who may read answers (CORS) and who may write with the cookie
(the cross-site request check, against CSRF).

**Writes.** A state-changing request (any method but GET, HEAD and OPTIONS) that carries no
``Authorization: Bearer`` token must come from a trusted origin when it says where it comes
from, and must say so when it carries an auth cookie (``orderflow_access`` or
``orderflow_refresh``): its ``Origin`` header, or failing that its ``Referer``, names this
API's own origin or one in ``ORDERFLOW_CORS_ORIGINS``. Otherwise it is answered 403 before
any route runs, so nothing is written. This is OWASP's "verify the origin with standard
headers": browsers set ``Origin`` on every cross-origin write and a page cannot forge it,
while a bearer token is never sent by a browser on its own, so bearer callers (and callers
without a cookie or an ``Origin``, such as scripts and Stripe) are not concerned. Refusing a
foreign ``Origin`` on a request without a cookie covers login CSRF: a page cannot log its
visitor into the attacker's account.

**The API's own origin** is the request's scheme (``https`` only when uvicorn is told so by
a trusted proxy: ``--proxy-headers``) and its ``Host`` header, the address the browser used.

**Reads.** Starlette's CORS middleware answers for the allowed origins only, with
credentials; a preflight from any other origin is refused without a single allow header.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ACCESS_COOKIE, REFRESH_COOKIE
from api.observability import REQUEST_ID_HEADER
from api.problems import problem
from orderflow.origins import origin_of
from orderflow.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUTH_COOKIES = (ACCESS_COOKIE, REFRESH_COOKIE)
#: What a front end on an allowed origin may send and read besides the CORS-safelisted ones.
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER)
EXPOSED_HEADERS = ("Location", "Retry-After", "Idempotent-Replayed", REQUEST_ID_HEADER)

log = structlog.get_logger("api.cross_origin")


def install_cross_origin(app: FastAPI, settings: Settings) -> None:
    """Both checks, the CORS middleware outside the write check, so that an allowed front
    end can read every answer, refusals included."""
    app.add_middleware(CrossSiteWriteCheck, allowed_origins=settings.cors_origins)
    app.add_middleware(
        _Cors,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
    )


class CrossSiteWriteCheck:
    """The write rule of the module docstring, as ASGI middleware: every route, present and
    future, is covered, and a refused request never reaches one."""

    def __init__(self, app: ASGIApp, allowed_origins: tuple[str, ...]) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if _has_bearer_token(headers):
            return None
        source, claimed = _claimed_origin(headers)
        if source is None:  # says nothing of where it comes from
            if not _has_auth_cookie(headers):
                return None
            detail = "a request authenticated by cookie must send Origin (or Referer)"
        elif claimed is not None and (
            claimed in self.allowed_origins or claimed == _own_origin(scope, headers)
        ):
            return None
        else:
            sent = (headers.get(source) or "")[:200]
            detail = (
                f"{source.title()} {sent!r} is neither this API's origin nor in "
                "ORDERFLOW_CORS_ORIGINS: a page of another site may not write here"
            )
        log.warning(
            "cross-site request refused",
            method=scope["method"],
            path=scope.get("path"),
            detail=detail,
        )
        return problem(403, detail, slug="cross-site-request", title="Cross-site request refused")


def _has_bearer_token(headers: Headers) -> bool:
    """As ``HTTPBearer`` reads it: another scheme (``Basic``, which a browser may attach by
    itself) leaves the request to the cookie."""
    scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
    return scheme.lower() == "bearer" and bool(credentials)


def _has_auth_cookie(headers: Headers) -> bool:
    cookies = cookie_parser(headers.get("cookie", ""))
    return any(cookies.get(name) for name in AUTH_COOKIES)


def _claimed_origin(headers: Headers) -> tuple[str | None, str | None]:
    """(the header that says where the request comes from, ``Origin`` or failing that
    ``Referer``, None when it sent neither; the origin it names, None when it names none,
    as ``Origin: null`` does)."""
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value is not None:
            return name, origin_of(value)
    return None, None


def _own_origin(scope: Scope, headers: Headers) -> str | None:
    host = headers.get("host")
    return origin_of(f"{scope.get('scheme', 'http')}://{host}") if host else None


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
