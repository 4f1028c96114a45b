"""Webhook endpoints: create (the secret shown once), change, pause, delete, rotate the
secret (both sign for a day), list deliveries, replay a window, retry one delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from orderflow.errors import Conflict, NotFound, Unprocessable
from orderflow.events.types import check_patterns
from orderflow.ids import new_id
from orderflow.pagination import Page, paginate
from orderflow.webhooks.delivery import wake_dispatchers
from orderflow.webhooks.models import WebhookDelivery, WebhookEndpoint
from orderflow.webhooks.signing import new_secret
from orderflow.webhooks.ssrf import check_url

#: How long the previous secret still signs after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    PAUSED = "paused"
    #: Set by the system only (410 Gone, or failing for days).
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


def likes_of(patterns: list[str]) -> list[str]:
    """``order.*`` → ``order.%``; ``*`` → ``%`` (event types hold no ``%`` nor ``_``)."""
    return ["%" if p == "*" else (p[:-1] + "%" if p.endswith(".*") else p) for p in patterns]


def _checked_types(event_types: list[str]) -> list[str]:
    try:
        return sorted(set(check_patterns(event_types)))
    except ValueError as error:
        raise Unprocessable(
            str(error), errors=[{"field": "event_types", "message": str(error)}]
        ) from None


def create_endpoint(
    session: Session,
    url: str,
    event_types: list[str],
    description: str | None,
    *,
    allow_private: bool,
) -> Created:
    check_url(url, allow_private=allow_private)
    types = _checked_types(event_types)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=new_id("we"),
        url=url,
        description=description,
        event_types=types,
        type_likes=likes_of(types),
        status=EndpointStatus.ENABLED.value,
        secret=secret,
    )
    session.add(endpoint)
    session.flush()
    session.refresh(endpoint)
    return Created(endpoint, secret)


def list_endpoints(session: Session, limit: int, offset: int) -> Page[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(
        WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc()
    )
    return paginate(session, query, limit, offset)


def get_endpoint(session: Session, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return endpoint


def update_endpoint(
    session: Session, endpoint_id: str, changes: dict[str, Any], *, allow_private: bool
) -> WebhookEndpoint:
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    if "url" in changes:
        check_url(changes["url"], allow_private=allow_private)
        endpoint.url = changes["url"]
    if "event_types" in changes:
        endpoint.event_types = _checked_types(changes["event_types"])
        endpoint.type_likes = likes_of(endpoint.event_types)
    if "description" in changes:
        endpoint.description = changes["description"]
    if "status" in changes:
        status = EndpointStatus(changes["status"])
        if status is EndpointStatus.DISABLED:
            raise Unprocessable(
                "disabled is set by the system; pause an endpoint instead",
                errors=[{"field": "status", "message": "enabled or paused"}],
            )
        if status is EndpointStatus.ENABLED and endpoint.status != status.value:
            endpoint.failing_since = None
            endpoint.disabled_reason = None
        endpoint.status = status.value
    endpoint.updated_at = func.now()
    session.flush()
    session.refresh(endpoint)
    return endpoint


def delete_endpoint(session: Session, endpoint_id: str) -> None:
    session.delete(get_endpoint(session, endpoint_id))


def rotate_secret(session: Session, endpoint_id: str) -> str:
    """A new secret; the old one keeps signing too for ``ROTATION_OVERLAP``."""
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = func.now() + ROTATION_OVERLAP
    endpoint.secret = secret
    endpoint.updated_at = func.now()
    session.flush()
    return secret


def list_deliveries(
    session: Session, endpoint_id: str, status: DeliveryStatus | None, limit: int, offset: int
) -> Page[WebhookDelivery]:
    get_endpoint(session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    return paginate(session, query.order_by(WebhookDelivery.id.desc()), limit, offset)


def replay(
    session: Session,
    endpoint_id: str,
    since: datetime,
    until: datetime | None,
    types: list[str] | None,
) -> int:
    """Send again the events of [since, until) the endpoint subscribes to (and of ``types``,
    if given), with their original ids: a new delivery each, in sequence order per subject."""
    endpoint = get_endpoint(session, endpoint_id)
    likes = likes_of(_checked_types(types)) if types else ["%"]
    created: int = session.execute(
        _REPLAY,
        {
            "endpoint_id": endpoint.id,
            "since": since,
            "until": until,
            "likes": likes,
        },
    ).scalar_one()
    return created


_REPLAY = text(
    """
    WITH chosen AS (
        SELECT ev.id, ev.subject_type, ev.subject_id, ev.sequence
        FROM events ev JOIN webhook_endpoints e ON e.id = :endpoint_id
        WHERE ev.created_at >= :since
          AND (CAST(:until AS timestamptz) IS NULL OR ev.created_at < :until)
          AND ev.type LIKE ANY (e.type_likes)
          AND ev.type LIKE ANY (CAST(:likes AS text[]))
    ), replays AS (
        INSERT INTO webhook_deliveries
            (endpoint_id, event_id, subject_type, subject_id, sequence, replay)
        SELECT :endpoint_id, c.id, c.subject_type, c.subject_id, c.sequence,
               (SELECT coalesce(max(d.replay), 0) + 1 FROM webhook_deliveries d
                 WHERE d.endpoint_id = :endpoint_id AND d.event_id = c.id)
        FROM chosen c ORDER BY c.subject_type, c.subject_id, c.sequence
        RETURNING id
    )
    SELECT count(*) FROM replays
    """
)


def retry_delivery(session: Session, delivery_id: int) -> WebhookDelivery:
    """Send a failed or exhausted delivery again now (in its turn for its subject). One
    answered 2xx is not sent again: replay its event instead."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound(f"webhook delivery whd_{delivery_id} does not exist")
    if delivery.status == DeliveryStatus.SUCCEEDED.value:
        raise Conflict("this delivery succeeded; replay its event to send it again")
    delivery.status = DeliveryStatus.FAILED.value if delivery.attempts else "pending"
    delivery.next_attempt_at = func.now()
    delivery.updated_at = func.now()
    wake_dispatchers(session)
    session.flush()
    session.refresh(delivery)
    return delivery
