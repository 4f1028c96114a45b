"""Shapes shared by every resource: strict request bodies, list pages, problems."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from orderflow.money import CURRENCIES, is_currency
from orderflow.places import COUNTRIES, is_country

T = TypeVar("T")
_ORDER = "ord_5c1e9a7b3d2f4e6a8b0c1d2e"


def _whole_number(value: object) -> object:
    """JSON Schema's ``integer`` (what the spec promises) includes ``2.0``: take it as 2.
    Fractions (``2.5``), text (``"2"``) and booleans stay refused by ``strict``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Put after ``Field(strict=True)`` on integer fields of request bodies (it runs first).
WholeNumber = BeforeValidator(_whole_number)


def _iso_currency(code: str) -> str:
    if not is_currency(code):
        raise ValueError("must be an ISO 4217 currency code in lower case, such as usd, eur or jpy")
    return code


def _iso_country(code: str) -> str:
    if not is_country(code):
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, such as US, DE or JP")
    return code


#: A lowercase ISO 4217 code (``orderflow.money``); the spec lists them all.
Currency = Annotated[
    str,
    Field(pattern=r"^[a-z]{3}$", examples=["usd"], json_schema_extra={"enum": sorted(CURRENCIES)}),
    AfterValidator(_iso_currency),
]
#: An ISO 3166-1 alpha-2 code (``orderflow.places``); the spec lists them all.
CountryCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2",
        examples=["US"],
        json_schema_extra={"enum": sorted(COUNTRIES)},
    ),
    AfterValidator(_iso_country),
]
#: Minor units; the cap keeps any order total far inside a 64-bit integer.
Amount = Annotated[int, Field(ge=0, le=10_000_000_000, strict=True), WholeNumber]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.I)


def _rfc3339_only(value: object) -> object:
    """Pydantic also reads numbers (``0.5``) and bare dates as datetimes; the contract and
    the spec (``format: date-time``) say RFC 3339."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
    return value


def _within_utc_years(value: datetime) -> datetime:
    """``0001-01-01T00:00:01+04:00`` is RFC 3339 but falls before year 1 in UTC, where
    PostgreSQL stores it and Python cannot read it back."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between the years 1 and 9999 in UTC") from None
    return value


#: A date-time parameter: RFC 3339 with a time zone offset, nothing else.
Rfc3339DateTime = Annotated[
    datetime, BeforeValidator(_rfc3339_only), AfterValidator(_within_utc_years)
]


#: Required text must hold something besides white space (``\s`` in a pattern is Unicode's
#: White_Space, which is what ``_WHITE_SPACE`` lists).
NON_BLANK = r"\S"
_WHITE_SPACE = (
    "".join(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def with_examples(*examples: Any) -> ConfigDict:
    """A model's config whose JSON schema carries ``examples`` (shown by /docs and /redoc)."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class RequestBody(BaseModel):
    """Request bodies refuse unknown fields, silent type coercion, and text PostgreSQL cannot
    store (NUL characters, unpaired surrogates), which would otherwise fail as a 500.

    Text is checked as sent, against the limits the OpenAPI spec publishes, and trimmed of
    surrounding white space afterwards (trimming first, as ``str_strip_whitespace`` does,
    made the API refuse text the spec allows and accept text it forbids)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if type(value) is not str:  # enums are str too, and must stay enums
            return value
        if not is_storable_text(value):
            raise ValueError("must be text without NUL characters or unpaired surrogates")
        return value.strip(_WHITE_SPACE)


def is_storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ListPage(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


#: What any route with a JSON body may also answer: a body that is not even text (400),
#: larger than the limit (413), or not JSON (415, ``api.strict``).
BODY_PROBLEMS = (400, 413, 415)

_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def problem_example(
    status: int, slug: str, title: str, detail: str, **extra: Any
) -> dict[str, Any]:
    """A problem document as the API answers it (``api.problems.problem``)."""
    return {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


#: What each status means on any route, and an example of its problem document; a route
#: names its own cases with ``problem_responses(..., examples=...)``.
_GENERIC: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "The body is not JSON text at all (e.g. not UTF-8)",
        problem_example(400, "bad-request", "Bad request", "There was an error parsing the body"),
    ),
    401: (
        "Not logged in, or the access token is invalid, expired or its session closed",
        problem_example(
            401,
            "not-authenticated",
            "Not authenticated",
            "log in first: send Authorization: Bearer <token>",
        ),
    ),
    403: (
        "Refused: the role does not allow it, or a write authenticated by cookie came "
        "from an origin that is not trusted (`/problems/cross-site-request`)",
        problem_example(403, "forbidden", "Forbidden", "only admins may do this"),
    ),
    404: (
        "It does not exist, or it is not the caller's",
        problem_example(404, "not-found", "Not found", f"order {_ORDER} does not exist"),
    ),
    409: (
        "The resource's state does not allow it",
        problem_example(409, "conflict", "Conflict", "the request conflicts with the state"),
    ),
    413: (
        "The body is larger than ORDERFLOW_MAX_BODY_BYTES",
        problem_example(
            413,
            "payload-too-large",
            "Request body too large",
            "the request body exceeds 1048576 bytes",
        ),
    ),
    415: (
        "The body is not sent as JSON (`Content-Type: application/json` or a `+json` type)",
        problem_example(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json (it came as text/plain)",
        ),
    ),
    422: (
        "Validation failed: `errors` names each bad field",
        problem_example(
            422,
            "validation-error",
            "Validation failed",
            "invalid input in limit",
            errors=[
                {
                    "field": "limit",
                    "message": "Input should be less than or equal to 100",
                    "type": "less_than_equal",
                }
            ],
        ),
    ),
    429: (
        "Rate limited: retry after the `Retry-After` header's seconds",
        problem_example(
            429,
            "rate-limited",
            "Too many requests",
            "too many orders from this caller; retry in 42 s",
        ),
    ),
    502: (
        "A service this one depends on refused the request",
        problem_example(502, "bad-gateway", "Bad gateway", "the upstream refused the request"),
    ),
    503: (
        "The database or the broker is unavailable; nothing was written, retry shortly",
        problem_example(
            503, "unavailable", "Service unavailable", "the database is unavailable; retry shortly"
        ),
    ),
}

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def problem_responses(
    *statuses: int, examples: dict[int, dict[str, dict[str, Any]]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route: every listed status answers a problem document,
    with its meaning and named examples (the route's own, from ``examples``, else a generic
    one). 422 is always listed: any route may refuse its parameters.

    The schema goes under ``application/problem+json``, the type the API answers with, so a
    client (or schemathesis) can validate problem bodies; ``model`` only registers the
    component (FastAPI files it under ``application/json`` as well, so the examples go
    there too)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 422}):
        description, generic = _GENERIC[status]
        named = (examples or {}).get(status) or {generic["type"].rsplit("/", 1)[-1]: generic}
        media_examples = {
            name: {"summary": str(value["detail"]), "value": value} for name, value in named.items()
        }
        responses[status] = {
            "model": Problem,
            "description": description,
            "content": {
                "application/problem+json": {"schema": _PROBLEM_SCHEMA, "examples": media_examples},
                "application/json": {"examples": media_examples},
            },
        }
        if status in (429, 503):
            responses[status]["headers"] = _RETRY_AFTER
    return responses


def json_answer(status: int, description: str, **examples: Any) -> dict[int | str, Any]:
    """A success response's ``responses=`` entry: its meaning and named JSON examples (the
    schema comes from the route's ``response_model``)."""
    return {
        status: {
            "description": description,
            "content": {
                "application/json": {
                    "examples": {name: {"value": value} for name, value in examples.items()}
                }
            },
        }
    }
