"""outgoing webhooks: endpoints and deliveries

Revision ID: 0008
Revises: 0007

A delivery row per (event, endpoint subscribed to it when the event was written), created by
the statement that writes the event, with an outbox message that sends it: nothing is lost
if Redis is flushed or a worker dies (the dispatcher finds due deliveries in this table).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhook_endpoints (
            id varchar(40) PRIMARY KEY,
            url text NOT NULL,
            description varchar(500),
            event_types text[] NOT NULL,
            type_likes text[] NOT NULL,
            status varchar(16) NOT NULL DEFAULT 'enabled',
            secret text NOT NULL,
            previous_secret text,
            previous_secret_expires_at timestamptz,
            failing_since timestamptz,
            disabled_reason varchar(64),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT webhook_endpoints_status CHECK (status IN ('enabled', 'paused', 'disabled'))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            endpoint_id varchar(40) NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_id varchar(40) NOT NULL REFERENCES events (id) ON DELETE CASCADE,
            subject_type varchar(16) NOT NULL,
            subject_id varchar(40) NOT NULL,
            sequence integer NOT NULL,
            replay integer NOT NULL DEFAULT 0,
            status varchar(16) NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            dispatched_at timestamptz,
            claimed_until timestamptz,
            last_status_code integer,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz,
            CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id, replay),
            CONSTRAINT webhook_deliveries_status
                CHECK (status IN ('pending', 'succeeded', 'failed', 'exhausted'))
        )
        """
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) "
        "WHERE status IN ('pending', 'failed')"
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_subject ON webhook_deliveries "
        "(endpoint_id, subject_type, subject_id, sequence)"
    )
    op.execute("CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)")


def downgrade() -> None:
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhook_endpoints")
