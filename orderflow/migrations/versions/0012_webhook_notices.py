"""webhook endpoint disablement notices

Revision ID: 0012_webhook_notices
Revises: 0012_sms

When the system disables an endpoint (410 Gone, or nothing but failures for days) the admins
get an e-mail, once per disablement whatever redeliveries happen: the endpoint counts its
disablements, and a notice row per (endpoint, disablement, recipient) is claimed before the
e-mail is sent (as ``emails`` does per order and kind). ``notified_disablements`` is how far
the notices are done, so the dispatcher can send again any whose message was lost.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_webhook_notices"
down_revision: str | None = "0012_sms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE webhook_endpoints
            ADD COLUMN disabled_at timestamptz,
            ADD COLUMN disablements integer NOT NULL DEFAULT 0,
            ADD COLUMN notified_disablements integer NOT NULL DEFAULT 0,
            ADD COLUMN notices_dispatched_at timestamptz
        """
    )
    op.execute(
        """
        CREATE TABLE webhook_endpoint_notices (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            endpoint_id varchar(40) NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            disablement integer NOT NULL,
            recipient varchar(320) NOT NULL,
            status varchar(8) NOT NULL DEFAULT 'sending',
            provider_message_id varchar(255),
            claimed_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz,
            CONSTRAINT webhook_endpoint_notices_once UNIQUE (endpoint_id, disablement, recipient),
            CONSTRAINT webhook_endpoint_notices_status CHECK (status IN ('sending', 'sent'))
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_endpoint_notices")
    op.execute(
        """
        ALTER TABLE webhook_endpoints
            DROP COLUMN disabled_at,
            DROP COLUMN disablements,
            DROP COLUMN notified_disablements,
            DROP COLUMN notices_dispatched_at
        """
    )
