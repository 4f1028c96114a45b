"""Every error leaves the API as an RFC 9457 ``application/problem+json`` document."""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from orderflow.errors import OrderflowError

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
_SLUGS = {
    400: "bad-request",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    500: "internal-error",
    503: "unavailable",
}

#: What a problem echoes of the request (an id, a path, a value, a parameter name) is cut to
#: this many characters: enough to recognise it, never a 5,000-character id sent back.
ECHO_LIMIT = 64
#: And no text member of a problem runs past this many.
TEXT_LIMIT = 500
_LONG_WORD = re.compile(rf"\S{{{ECHO_LIMIT + 1},}}")
#: Set in the scope of a ``HEAD`` request served as a ``GET`` (``api.middleware.HeadAsGet``).
HEAD_AS_GET = "orderflow.head_as_get"

log = structlog.get_logger("api.problems")


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, slug=slug, title=title, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_body(
    status: int, detail: str, *, slug: str | None = None, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 document; every answer with a problem is built here, so whatever it
    echoes of the request is cut to a sane length here (``shorten``)."""
    return shorten(
        {
            "type": f"/problems/{slug or _SLUGS.get(status, 'error')}",
            "title": title or _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            **extra,
        }
    )


def shorten(value: Any) -> Any:
    """``value`` with every run of text longer than ``ECHO_LIMIT`` without a space cut to
    that length and marked with an ellipsis, and every text cut to ``TEXT_LIMIT``."""
    if isinstance(value, str):
        value = _LONG_WORD.sub(lambda word: word.group()[:ECHO_LIMIT] + "…", value)
        return value if len(value) <= TEXT_LIMIT else value[: TEXT_LIMIT - 1] + "…"
    if isinstance(value, dict):
        return {key: shorten(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shorten(item) for item in value]
    return value


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts)


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, OrderflowError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    retry_after = error.extra.pop("retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return problem(
        error.status,
        error.detail,
        slug=error.slug,
        title=error.title,
        headers=headers,
        **error.extra,
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    items = error.errors()
    if len(items) == 1 and items[0].get("type") == "json_invalid":
        return _malformed_json(items[0], error.body)
    errors = [
        {
            "field": _field_name(tuple(item.get("loc", ()))),
            "message": _message(item.get("msg", "invalid")),
            "type": item.get("type"),
        }
        for item in items
    ]
    names = ", ".join(sorted({entry["field"] or '""' for entry in errors})) or "the request"
    if all(
        item.get("type") == "extra_forbidden" and item.get("loc", ("",))[0] == "query"
        for item in items
    ):
        return problem(422, f"unknown query parameter: {names}", errors=errors)
    return problem(422, f"invalid input in {names}", errors=errors)


def _message(text: str) -> str:
    """pydantic's message without the ``Value error, `` it puts before our own."""
    return text.removeprefix("Value error, ")


def _malformed_json(item: dict[str, Any], document: Any) -> JSONResponse:
    """Where the JSON breaks, as a person counts: line and column (from 1), not an offset."""
    reason = str(item.get("ctx", {}).get("error") or "malformed JSON")
    position = next((part for part in item.get("loc", ()) if isinstance(part, int)), 0)
    text = document if isinstance(document, str) else ""
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    where = f"{reason} at line {line}, column {column}"
    return problem(
        422,
        f"the body is not valid JSON: {where}",
        errors=[{"field": "body", "message": where, "type": "json_invalid"}],
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else _TITLES.get(error.status_code, "")
    if error.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.url.path}"
    headers = dict(error.headers or {})
    if error.status_code == 405:
        detail = f"{request_method(request)} is not allowed on {request.url.path}"
        # Starlette names only the methods of the first route whose path matched; a resource
        # served by several routes (GET, PATCH, DELETE /products/{id}) supports them all.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(error.status_code, detail, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path; ``HEAD`` wherever ``GET`` is
    (``api.middleware.HeadAsGet``)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(route.methods or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def request_method(request: Request) -> str:
    """The method the client sent (a ``HEAD`` is served as a ``GET``)."""
    return "HEAD" if request.scope.get(HEAD_AS_GET) else request.method


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    """PostgreSQL restarting or unreachable: nothing was written; the client may retry."""
    log.warning("database unavailable", path=request.url.path, error=type(error).__name__)
    return problem(503, "the database is unavailable; retry shortly", headers={"Retry-After": "1"})


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return problem(500, "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OrderflowError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
