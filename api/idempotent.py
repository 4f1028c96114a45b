"""``Idempotency-Key`` on the routes that create something (orders, refunds, shipments): the
header, the request it scopes and the 201 it answers or replays. The rule itself (claim,
replay, remember) is ``orderflow.idempotency``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, status
from fastapi.responses import JSONResponse

from orderflow import idempotency

#: What ``idempotency.check_key`` accepts of a header value: printable (Latin-1, as headers
#: are read) characters; HTTP strips spaces at either end.
_PRINTABLE = r"\x21-\x7e\xa1-\xac\xae-\xff"
IDEMPOTENCY_KEY_PATTERN = f"^[{_PRINTABLE}]([ {_PRINTABLE}]*[{_PRINTABLE}])?$"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Optional, recommended; 1 to 255 printable characters. Scoped to the caller.",
        # Documented here, enforced by the service: a bad key is a 400 (DESIGN.md), not a 422.
        json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
    ),
]


def keyed_request(
    key: str | None, caller_id: str, path: str, body: Any, ttl_hours: int
) -> idempotency.IdempotentRequest | None:
    """The ``POST`` to ``path`` under ``key``, checked (400 when malformed) and fingerprinted
    with its body; ``None`` without a key."""
    if key is None:
        return None
    idempotency.check_key(key)
    return idempotency.IdempotentRequest(
        caller_id=caller_id,
        key=key,
        fingerprint=idempotency.fingerprint("POST", path, body),
        ttl_hours=ttl_hours,
    )


def created(body: dict[str, Any], location: str) -> idempotency.StoredResponse:
    """The 201 a creating route stores with its key."""
    return idempotency.StoredResponse(
        status=status.HTTP_201_CREATED, body=body, location=f"/api/v1{location}"
    )


def answer_of(answer: idempotency.Answer) -> JSONResponse:
    """The stored or fresh answer, with ``Location`` and ``Idempotent-Replayed`` on a replay."""
    headers = {"Location": answer.response.location or ""}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.response.body, answer.response.status, headers=headers)
