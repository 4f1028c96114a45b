"""Every error leaves the API as an RFC 9457 ``application/problem+json`` document."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    422: "validation-error",
    500: "internal-error",
    503: "unavailable",
}

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
    body = {
        "type": f"/problems/{slug or _SLUGS.get(status, 'error')}",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


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
    errors = [
        {
            "field": _field_name(tuple(item.get("loc", ()))),
            "message": item.get("msg", "invalid"),
            "type": item.get("type"),
        }
        for item in error.errors()
    ]
    names = ", ".join(sorted({entry["field"] for entry in errors})) or "the request"
    return problem(422, f"invalid input in {names}", errors=errors)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else _TITLES.get(error.status_code, "")
    if error.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.url.path}"
    headers = dict(error.headers or {})
    if error.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        # Starlette names only the methods of the first route whose path matched; a resource
        # served by several routes (GET, PATCH, DELETE /products/{id}) supports them all.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem(error.status_code, detail, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


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
