"""Sending one webhook delivery: claim it, POST it, record the outcome.

One delivery per task, with a short timeout, on a queue and worker pool of its own
(``webhooks``): a dead or slow receiver costs at most ``ORDERFLOW_WEBHOOK_TIMEOUT_SECONDS``
of one worker thread per attempt, never a worker of the order pipeline. An endpoint has at
most ``ORDERFLOW_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT`` deliveries in flight (checked at claim),
so a dead endpoint with a large backlog cannot take every thread from the others.

Order per (endpoint, subject): a delivery is claimed only when no delivery of the same
endpoint and subject with a lower sequence is still pending or failed, so the next event is
sent only after the previous one was answered 2xx or exhausted its retries; an exhausted one
ends the wait (the retry schedule bounds how long one bad event holds its subject).

The claim is committed before the POST (the lease ``claimed_until`` covers the timeout), and
the outcome is recorded in a second transaction; a worker killed in between leaves a claim
that expires, and the dispatcher sends the delivery again: at least once, same webhook-id.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic_core import to_jsonable_python
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from orderflow.settings import Settings
from orderflow.webhooks import notices, signing
from orderflow.webhooks.ssrf import UnsafeUrl, check_url, pinned_transport

#: A claim lasts twice the timeout and this much more (the recording after the POST); a
#: worker killed mid-delivery holds it no longer.
LEASE_MARGIN_SECONDS = 5
#: Largest ``Retry-After`` honoured: a day.
MAX_RETRY_AFTER_SECONDS = 86_400
#: Characters of a receiver's error kept on the delivery.
ERROR_CHARS = 500


@dataclass(frozen=True)
class Job:
    delivery_id: int
    endpoint_id: str
    attempt: int
    url: str
    secrets: list[str]
    event_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def label(self) -> str:
        if self.status_code is None:
            return "error"
        return f"{self.status_code // 100}xx"


def claim(session: Session, delivery_id: int, settings: Settings) -> Job | None:
    """The delivery, claimed for one attempt, if it is due, its endpoint enabled and not
    at its in-flight limit, and its turn has come; else ``None`` (nothing changed except
    that it is no longer counted as handed to the broker, so the dispatcher may send it)."""
    lease = 2 * settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
    row = (
        session.execute(
            _CLAIM,
            {
                "id": delivery_id,
                "lease": lease,
                "in_flight": settings.webhook_max_in_flight_per_endpoint,
            },
        )
        .mappings()
        .first()
    )
    if row is None:
        session.execute(_RELEASE, {"id": delivery_id})
        return None
    secrets_ = [row["secret"]]
    if row["previous_secret"] and row["previous_secret_valid"]:
        secrets_.append(row["previous_secret"])
    return Job(
        delivery_id=row["id"],
        endpoint_id=row["endpoint_id"],
        attempt=row["attempts"],
        url=row["url"],
        secrets=secrets_,
        event_id=row["event_id"],
        body=payload(row),
    )


def payload(event: Any) -> str:
    """The event as the feed shows it, as JSON."""
    body = {
        "id": event["event_id"],
        "type": event["type"],
        "created_at": event["created_at"],
        "subject": {"type": event["subject_type"], "id": event["subject_id"]},
        "sequence": event["sequence"],
        "data": event["data"],
    }
    return json.dumps(to_jsonable_python(body), separators=(",", ":"))


def send(job: Job, settings: Settings, client: httpx.Client) -> Outcome:
    """POST the signed event. Only 2xx is success; redirects are not followed."""
    try:
        check_url(job.url, allow_private=settings.webhook_allow_private_urls)
    except UnsafeUrl as error:
        return Outcome(None, f"refused: {error.detail}")
    headers = signing.headers(job.event_id, datetime.now(UTC), job.body, job.secrets)
    try:
        answer = client.post(job.url, content=job.body.encode(), headers=headers)
    except UnsafeUrl as error:  # the address found on connecting (DNS rebinding)
        return Outcome(None, f"refused: {error.detail}")
    except httpx.TimeoutException:
        return Outcome(None, f"timed out after {settings.webhook_timeout_seconds} s")
    except httpx.HTTPError as failure:
        return Outcome(None, f"{type(failure).__name__}: {failure}"[:ERROR_CHARS])
    said = None if 200 <= answer.status_code < 300 else answer.text[:ERROR_CHARS]
    return Outcome(answer.status_code, said, _retry_after(answer))


def new_client(settings: Settings) -> httpx.Client:
    """Connections go to the addresses the SSRF guard checked (``ssrf.PinnedBackend``)."""
    return httpx.Client(
        transport=pinned_transport(allow_private=settings.webhook_allow_private_urls),
        trust_env=False,
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        follow_redirects=False,
        headers={"user-agent": "orderflow-webhooks/1"},
    )


def _retry_after(answer: httpx.Response) -> float | None:
    if answer.status_code not in (429, 503):
        return None
    value = answer.headers.get("retry-after", "").strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_RETRY_AFTER_SECONDS))


@dataclass(frozen=True)
class Recorded:
    status: str
    #: The next delivery to send at once, marked as handed on: after a success, the next of
    #: the same subject or else the endpoint's oldest due one (the slot this attempt used is
    #: free again); after an exhaustion, the next of the same subject (its wait is over).
    next_delivery_id: int | None
    endpoint_disabled: bool = False


def record(session: Session, job: Job, outcome: Outcome, settings: Settings) -> Recorded:
    delays = settings.webhook_retry_delays
    endpoint_disabled = False
    if outcome.succeeded:
        status = "succeeded"
        session.execute(_SUCCEEDED, {"id": job.delivery_id, "code": outcome.status_code})
    else:
        if job.attempt > len(delays):
            status, delay = "exhausted", 0.0
        else:
            status = "failed"
            delay = delays[job.attempt - 1] * random.uniform(0.8, 1.2)
            delay = max(delay, outcome.retry_after or 0.0)
        session.execute(
            _FAILED,
            {
                "id": job.delivery_id,
                "status": status,
                "code": outcome.status_code,
                "error": outcome.error,
                "delay": delay,
            },
        )
        disable_reason = "gone" if outcome.status_code == 410 else None
        verdict = session.execute(
            _ENDPOINT_FAILED,
            {
                "endpoint_id": job.endpoint_id,
                "reason": disable_reason,
                "days": settings.webhook_disable_after_days,
            },
        ).first()
        endpoint_disabled = bool(verdict and verdict.disable)
        if verdict is not None and verdict.disable:
            # In the transaction that disables it: the admins are told once per disablement.
            notices.schedule(session, job.endpoint_id, int(verdict.disablements))
    next_id = None
    if status in ("succeeded", "exhausted"):
        next_id = session.execute(_NEXT, {"id": job.delivery_id}).scalar()
    if next_id is None and status == "succeeded":
        next_id = session.execute(_NEXT_OF_ENDPOINT, {"endpoint_id": job.endpoint_id}).scalar()
    return Recorded(status, next_id, endpoint_disabled)


def dispatch_due(session: Session, settings: Settings, limit: int = 500) -> list[int]:
    """Due deliveries whose turn has come and that no task holds: retries whose time came,
    messages lost with Redis, claims of killed workers. Marked as handed to the broker."""
    return list(
        session.scalars(
            _DISPATCH,
            {"limit": limit, "redispatch": settings.webhook_redispatch_seconds},
        )
    )


#: A delivery may go when no earlier one of its endpoint and subject is still open.
_ITS_TURN = """
    NOT EXISTS (
        SELECT 1 FROM webhook_deliveries p
        WHERE p.endpoint_id = d.endpoint_id AND p.subject_type = d.subject_type
          AND p.subject_id = d.subject_id AND p.status IN ('pending', 'failed')
          AND (p.sequence, p.id) < (d.sequence, d.id))
"""
_CLAIM = text(
    f"""
    UPDATE webhook_deliveries d
    SET claimed_until = now() + make_interval(secs => :lease), attempts = d.attempts + 1,
        updated_at = now()
    FROM webhook_endpoints e, events ev
    WHERE d.id = :id AND e.id = d.endpoint_id AND ev.id = d.event_id
      AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
      AND (d.claimed_until IS NULL OR d.claimed_until < now())
      AND e.status = 'enabled'
      AND (SELECT count(*) FROM webhook_deliveries c
           WHERE c.endpoint_id = d.endpoint_id AND c.claimed_until > now()) < :in_flight
      AND {_ITS_TURN}
    RETURNING d.id, d.endpoint_id, d.attempts, e.url, e.secret, e.previous_secret,
              coalesce(e.previous_secret_expires_at > now(), false) AS previous_secret_valid,
              ev.id AS event_id, ev.type, ev.created_at, ev.subject_type, ev.subject_id,
              ev.sequence, ev.data
    """
)
_RELEASE = text(
    "UPDATE webhook_deliveries SET dispatched_at = NULL "
    "WHERE id = :id AND status IN ('pending', 'failed') "
    "AND (claimed_until IS NULL OR claimed_until < now())"
)
#: The delivery succeeded, and its endpoint is failing no more (one round trip).
_SUCCEEDED = text(
    """
    WITH done AS (
        UPDATE webhook_deliveries
        SET status = 'succeeded', last_status_code = :code, last_error = NULL,
            claimed_until = NULL, delivered_at = now(), updated_at = now()
        WHERE id = :id
        RETURNING endpoint_id
    )
    UPDATE webhook_endpoints e SET failing_since = NULL
    FROM done WHERE e.id = done.endpoint_id AND e.failing_since IS NOT NULL
    """
)
_FAILED = text(
    """
    UPDATE webhook_deliveries
    SET status = :status, last_status_code = :code, last_error = :error,
        next_attempt_at = now() + make_interval(secs => :delay),
        claimed_until = NULL, dispatched_at = NULL, updated_at = now()
    WHERE id = :id
    """
)
#: Notes the failure; disables the endpoint on 410 Gone or after days of nothing but
#: failures. Answers whether this disabled it, and its count of disablements.
_ENDPOINT_FAILED = text(
    """
    WITH verdict AS (
        SELECT id, status = 'enabled' AND (
                   CAST(:reason AS text) IS NOT NULL
                   OR failing_since < now() - make_interval(secs => :days * 86400)) AS disable
        FROM webhook_endpoints WHERE id = :endpoint_id FOR UPDATE
    )
    UPDATE webhook_endpoints e
    SET failing_since = coalesce(e.failing_since, now()),
        status = CASE WHEN c.disable THEN 'disabled' ELSE e.status END,
        disabled_reason = CASE WHEN c.disable THEN coalesce(CAST(:reason AS text), 'failing')
                          ELSE e.disabled_reason END,
        disabled_at = CASE WHEN c.disable THEN now() ELSE e.disabled_at END,
        disablements = e.disablements + CASE WHEN c.disable THEN 1 ELSE 0 END,
        updated_at = now()
    FROM verdict c WHERE e.id = c.id
    RETURNING c.disable, e.disablements
    """
).bindparams(bindparam("reason"))
_NEXT = text(
    f"""
    UPDATE webhook_deliveries d SET dispatched_at = now()
    WHERE d.id = (
        SELECT n.id FROM webhook_deliveries n, webhook_deliveries done
        WHERE done.id = :id AND n.endpoint_id = done.endpoint_id
          AND n.subject_type = done.subject_type AND n.subject_id = done.subject_id
          AND n.status IN ('pending', 'failed') AND n.next_attempt_at <= now()
        ORDER BY n.sequence, n.id LIMIT 1)
      AND {_ITS_TURN}
    RETURNING d.id
    """
)
#: The endpoint's oldest due delivery whose turn has come and that no attempt holds (found
#: through the index of due deliveries, in the order the dispatcher would hand them out).
_NEXT_OF_ENDPOINT = text(
    f"""
    UPDATE webhook_deliveries d SET dispatched_at = now()
    WHERE d.id = (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
          AND d.endpoint_id = :endpoint_id
          AND (d.claimed_until IS NULL OR d.claimed_until < now())
          AND {_ITS_TURN}
        ORDER BY d.next_attempt_at LIMIT 1
        FOR UPDATE OF d SKIP LOCKED)
    RETURNING d.id
    """
)
_DISPATCH = text(
    f"""
    UPDATE webhook_deliveries d SET dispatched_at = now()
    WHERE d.id IN (
        SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
          AND e.status = 'enabled'
          AND (d.claimed_until IS NULL OR d.claimed_until < now())
          AND (d.dispatched_at IS NULL
               OR d.dispatched_at < now() - make_interval(secs => :redispatch))
          AND {_ITS_TURN}
        ORDER BY d.next_attempt_at LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED)
    RETURNING d.id
    """
)
