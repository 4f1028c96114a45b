"""Shapes shared by every resource: strict request bodies, list pages, problems."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$", examples=["usd"])]
#: Minor units; the cap keeps any order total far inside a 64-bit integer.
Amount = Annotated[int, Field(ge=0, le=10_000_000_000, strict=True)]


class RequestBody(BaseModel):
    """Request bodies refuse unknown fields and silent type coercion."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route: every listed status answers a problem document."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in sorted({*statuses, 422})
    }
