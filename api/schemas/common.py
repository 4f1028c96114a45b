"""Shapes shared by every resource: strict request bodies, list pages, problems."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

T = TypeVar("T")


def _whole_number(value: object) -> object:
    """JSON Schema's ``integer`` (what the spec promises) includes ``2.0``: take it as 2.
    Fractions (``2.5``), text (``"2"``) and booleans stay refused by ``strict``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Put after ``Field(strict=True)`` on integer fields of request bodies (it runs first).
WholeNumber = BeforeValidator(_whole_number)

Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$", examples=["usd"])]
#: Minor units; the cap keeps any order total far inside a 64-bit integer.
Amount = Annotated[int, Field(ge=0, le=10_000_000_000, strict=True), WholeNumber]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.I)


def _rfc3339_only(value: object) -> object:
    """Pydantic also reads numbers (``0.5``) and bare dates as datetimes; the contract and
    the spec (``format: date-time``) say RFC 3339."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
    return value


#: A date-time parameter: RFC 3339 with a time zone offset, nothing else.
Rfc3339DateTime = Annotated[datetime, BeforeValidator(_rfc3339_only)]


#: Required text must hold something besides white space (``\s`` in a pattern is Unicode's
#: White_Space, which is what ``_WHITE_SPACE`` lists).
NON_BLANK = r"\S"
_WHITE_SPACE = (
    "".join(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]))
    + "\u2028\u2029\u202f\u205f\u3000"
)


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


#: What any route with a JSON body may also answer: a body that is not even text (400) or
#: larger than the limit (413).
BODY_PROBLEMS = (400, 413)

_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route: every listed status answers a problem document.

    The schema goes under ``application/problem+json``, the type the API answers with, so a
    client (or schemathesis) can validate problem bodies; ``model`` only registers the
    component (FastAPI files it under ``application/json`` as well)."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}},
        }
        for status in sorted({*statuses, 422})
    }
