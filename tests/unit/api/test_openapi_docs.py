"""The OpenAPI document explains itself: every operation has a summary and a description
written for it, and every request body and every response it documents (errors included)
shows an example. A route added without them fails here."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from orderflow.settings import Settings

SPEC = create_app(Settings.model_construct(environment="test")).openapi()
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if method in METHODS
]
IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    found: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return _resolve(found)


def _has_example(media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = _resolve(media.get("schema") or {})
    return bool(schema.get("examples")) or schema.get("example") is not None


def _generated_summary(operation: dict[str, Any]) -> str:
    """What FastAPI makes up when a route gives no summary: its function name, titled."""
    name = operation["operationId"].split("_api_v1_")[0].split("__")[0]
    return name.replace("_", " ").title()


def test_the_spec_has_operations_and_an_overview() -> None:
    assert len(OPERATIONS) >= 25
    assert "problem+json" in SPEC["info"]["description"]
    used = {tag for _, _, operation in OPERATIONS for tag in operation.get("tags", [])}
    described = {tag["name"] for tag in SPEC.get("tags", []) if tag.get("description")}
    assert used <= described


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_is_summarised_and_described(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    summary = operation.get("summary", "")
    assert summary.strip(), "no summary"
    assert summary != _generated_summary(operation), "summary made up from the function name"
    assert len(operation.get("description", "").strip()) >= 30, "no description"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_body_and_response_has_an_example(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    missing = []
    body = operation.get("requestBody")
    if body is not None:
        for media_type, media in body.get("content", {}).items():
            if not _has_example(media):
                missing.append(f"request body {media_type}")
    for status, response in operation["responses"].items():
        assert response.get("description", "").strip(), f"{status} has no description"
        for media_type, media in response.get("content", {}).items():
            if not _has_example(media):
                missing.append(f"{status} {media_type}")
    assert not missing, f"no example for: {', '.join(missing)}"


def test_every_error_response_shows_a_problem_document() -> None:
    for method, path, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            media = response["content"]["application/problem+json"]
            for name, example in media["examples"].items():
                value = example["value"]
                assert value["status"] == int(status), (method, path, status, name)
                assert value["type"].startswith("/problems/"), (method, path, status, name)
                assert {"title", "detail"} <= value.keys(), (method, path, status, name)
