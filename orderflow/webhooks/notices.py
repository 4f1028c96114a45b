"""Telling the admins that the system disabled a webhook endpoint (410 Gone, or nothing but
failures for ``ORDERFLOW_WEBHOOK_DISABLE_AFTER_DAYS``): one e-mail per admin per disablement,
through the configured e-mail sender, whatever redeliveries happen.

The transaction that disables the endpoint counts the disablement and writes the outbox
message that sends the notices (``schedule``). Each notice is claimed under a unique
(endpoint, disablement, recipient) before the sender is called and marked sent after, like
the customers' e-mails (``fulfilment.notifications``). When every admin's notice is sent,
the endpoint's ``notified_disablements`` catches up; a beat task schedules again
any disablement left behind (a message lost with Redis, a sender down for every retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from orderflow import outbox
from orderflow.db import Database
from orderflow.email import EmailMessage, EmailSender
from orderflow.idempotency import webhook_notice_message_key

#: The task that sends the notices of one disablement (``tasks.webhooks``).
NOTIFY_TASK = "orderflow.webhooks.notify_disabled"
#: How long a claim protects a send in progress; past it, the sender is presumed dead.
CLAIM_LEASE = timedelta(minutes=2)

_REASONS = {
    "gone": "the receiver answered 410 Gone, which says the endpoint no longer exists",
    "failing": "every delivery attempt failed for {days:g} days",
}


@dataclass(frozen=True)
class Disabled:
    """What the notice says about the endpoint."""

    id: str
    url: str
    reason: str
    disabled_at: datetime
    failing_since: datetime | None
    last_error: str | None


def schedule(session: Session, endpoint_id: str, disablement: int) -> None:
    """In the transaction that disabled the endpoint: send its notices once it commits."""
    outbox.enqueue(
        session,
        outbox.new_message(
            NOTIFY_TASK, None, {"endpoint_id": endpoint_id, "disablement": disablement}
        ),
    )


def due(session: Session, older_than_seconds: float) -> list[tuple[str, int]]:
    """Disablements whose notices are not all sent and whose message had time to run:
    (endpoint id, disablement), for the dispatcher to schedule again (each at most once
    per ``older_than_seconds``)."""
    rows = session.execute(_DUE, {"older": older_than_seconds}).all()
    return [(row.id, int(row.disablements)) for row in rows]


def send_notices(
    database: Database, sender: EmailSender, endpoint_id: str, disablement: int, days: float
) -> int:
    """E-mail every admin about this disablement, each once; answer how many were sent now.
    A sender error propagates after the claim is released (a retry may send it)."""
    with database.unit_of_work() as session:
        endpoint = _disabled(session, endpoint_id, disablement)
        admins = list(session.scalars(_ADMINS))
    if endpoint is None:
        return 0  # deleted since, or no such disablement
    sent = 0
    for recipient in admins:
        with database.unit_of_work() as session:
            claimed = _claim(session, endpoint_id, disablement, recipient)
            session.commit()
        if not claimed:
            continue  # sent already, or being sent by another worker
        message = compose(endpoint, disablement, recipient, days)
        try:
            provider_id = sender.send(message)
        except Exception:
            with database.unit_of_work() as session:
                session.execute(_RELEASE, _key(endpoint_id, disablement, recipient))
                session.commit()
            raise
        with database.unit_of_work() as session:
            session.execute(
                _MARK_SENT, {**_key(endpoint_id, disablement, recipient), "provider": provider_id}
            )
            session.commit()
        sent += 1
    with database.unit_of_work() as session:
        session.execute(_CAUGHT_UP, {"endpoint_id": endpoint_id, "disablement": disablement})
        session.commit()
    return sent


def compose(endpoint: Disabled, disablement: int, recipient: str, days: float) -> EmailMessage:
    reason = _REASONS.get(endpoint.reason, endpoint.reason).format(days=days)
    lines = [
        "Hello,",
        "",
        f"orderflow disabled the webhook endpoint {endpoint.id} ({endpoint.url}) at "
        f"{endpoint.disabled_at.isoformat(timespec='seconds')}: {reason}.",
    ]
    if endpoint.failing_since is not None:
        lines.append(f"It has failed since {endpoint.failing_since.isoformat(timespec='seconds')}.")
    if endpoint.last_error:
        lines.append(f"The last failed attempt: {endpoint.last_error}")
    lines += [
        "",
        "Nothing is sent to it while it is disabled, and no deliveries are made for it. When",
        "the receiver works again, enable it (PATCH /api/v1/webhook-endpoints/"
        f'{endpoint.id} {{"status": "enabled"}}) and replay what it missed',
        f"(POST /api/v1/webhook-endpoints/{endpoint.id}/replay "
        f'{{"since": "{(endpoint.failing_since or endpoint.disabled_at).isoformat()}"}}).',
        "",
    ]
    return EmailMessage(
        to=recipient,
        subject=f"Webhook endpoint {endpoint.id} was disabled",
        text="\n".join(lines),
        message_key=webhook_notice_message_key(endpoint.id, disablement, recipient),
    )


def _disabled(session: Session, endpoint_id: str, disablement: int) -> Disabled | None:
    row = session.execute(
        _ENDPOINT, {"endpoint_id": endpoint_id, "disablement": disablement}
    ).first()
    if row is None:
        return None
    return Disabled(
        row.id, row.url, row.disabled_reason or "failing", row.disabled_at, row.failing_since,
        row.last_error,
    )  # fmt: skip


def _claim(session: Session, endpoint_id: str, disablement: int, recipient: str) -> bool:
    key = _key(endpoint_id, disablement, recipient)
    claimed = (
        session.execute(_CLAIM_NEW, key).first()
        or session.execute(_RECLAIM_ABANDONED, {**key, "lease": CLAIM_LEASE}).first()
    )
    return claimed is not None


def _key(endpoint_id: str, disablement: int, recipient: str) -> dict[str, object]:
    return {"endpoint_id": endpoint_id, "disablement": disablement, "recipient": recipient}


_ENDPOINT = text(
    """
    SELECT e.id, e.url, e.disabled_reason, coalesce(e.disabled_at, e.updated_at) AS disabled_at,
           e.failing_since,
           (SELECT concat_ws(': ', 'HTTP ' || d.last_status_code, d.last_error)
              FROM webhook_deliveries d WHERE d.endpoint_id = e.id
              AND (d.last_error IS NOT NULL OR d.last_status_code IS NOT NULL)
              AND d.status <> 'succeeded'
              ORDER BY d.updated_at DESC LIMIT 1) AS last_error
    FROM webhook_endpoints e
    WHERE e.id = :endpoint_id AND :disablement BETWEEN 1 AND e.disablements
    """
)
_ADMINS = text("SELECT email FROM users WHERE role = 'admin' ORDER BY id")
_CLAIM_NEW = text(
    """
    INSERT INTO webhook_endpoint_notices (endpoint_id, disablement, recipient, claimed_at)
    VALUES (:endpoint_id, :disablement, :recipient, now())
    ON CONFLICT ON CONSTRAINT webhook_endpoint_notices_once DO NOTHING
    RETURNING id
    """
)
_THIS = "endpoint_id = :endpoint_id AND disablement = :disablement AND recipient = :recipient"
_RECLAIM_ABANDONED = text(
    f"""
    UPDATE webhook_endpoint_notices SET claimed_at = now()
    WHERE {_THIS} AND status = 'sending'
      AND (claimed_at IS NULL OR claimed_at < now() - CAST(:lease AS interval))
    RETURNING id
    """
)
_RELEASE = text(
    f"UPDATE webhook_endpoint_notices SET claimed_at = NULL WHERE {_THIS} AND status = 'sending'"
)
_MARK_SENT = text(
    f"""
    UPDATE webhook_endpoint_notices
    SET status = 'sent', sent_at = now(), provider_message_id = :provider
    WHERE {_THIS} AND status = 'sending'
    """
)
_CAUGHT_UP = text(
    """
    UPDATE webhook_endpoints
    SET notified_disablements = greatest(notified_disablements, :disablement)
    WHERE id = :endpoint_id AND NOT EXISTS (
        SELECT 1 FROM webhook_endpoint_notices n
        WHERE n.endpoint_id = :endpoint_id AND n.disablement = :disablement
          AND n.status = 'sending')
    """
)
_DUE = text(
    """
    UPDATE webhook_endpoints SET notices_dispatched_at = now()
    WHERE disablements > notified_disablements
      AND coalesce(disabled_at, updated_at) < now() - make_interval(secs => :older)
      AND (notices_dispatched_at IS NULL
           OR notices_dispatched_at < now() - make_interval(secs => :older))
    RETURNING id, disablements
    """
)
