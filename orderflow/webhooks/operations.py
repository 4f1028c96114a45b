"""What an operator does with webhooks (``orderflow webhooks …``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from orderflow.webhooks.delivery import wake_dispatchers


@dataclass(frozen=True)
class EndpointHealth:
    id: str
    url: str
    status: str
    open_deliveries: int
    oldest_open_seconds: float
    exhausted: int
    last_success: datetime | None
    failing_since: datetime | None


def endpoint_health(session: Session) -> list[EndpointHealth]:
    rows = session.execute(
        text(
            """
            SELECT e.id, e.url, e.status, e.failing_since,
                   count(d.id) FILTER (WHERE d.status IN ('pending', 'failed')) AS open,
                   coalesce(extract(epoch FROM now() - min(d.created_at)
                       FILTER (WHERE d.status IN ('pending', 'failed'))), 0) AS oldest,
                   count(d.id) FILTER (WHERE d.status = 'exhausted') AS exhausted,
                   max(d.delivered_at) AS last_success
            FROM webhook_endpoints e LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id
            GROUP BY e.id ORDER BY e.created_at
            """
        )
    ).all()
    return [
        EndpointHealth(
            row.id,
            row.url,
            row.status,
            int(row.open),
            float(row.oldest),
            int(row.exhausted),
            row.last_success,
            row.failing_since,
        )
        for row in rows
    ]


def retry_exhausted(session: Session, endpoint_id: str | None) -> int:
    """Give every exhausted delivery (of one endpoint, or all) one more attempt, now; the
    dispatcher sends them in their subjects' order."""
    result = session.execute(
        text(
            """
            UPDATE webhook_deliveries
            SET status = 'failed', next_attempt_at = now(), updated_at = now()
            WHERE status = 'exhausted'
              AND (CAST(:endpoint_id AS text) IS NULL OR endpoint_id = :endpoint_id)
            """
        ),
        {"endpoint_id": endpoint_id},
    )
    wake_dispatchers(session)
    return int(getattr(result, "rowcount", 0) or 0)
