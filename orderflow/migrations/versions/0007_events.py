"""business events: the feed

Revision ID: 0007
Revises: 0006

One row per business fact, written in the transaction of the change. ``txid`` is the id of
that transaction (``pg_current_xact_id()``): the feed serves only events of transactions
older than every transaction still running, in (txid, position) order, so its cursor never
skips an event that commits late (README, "The event feed"). ``event_subjects`` counts the
events of each subject: its row, locked by the upsert, makes ``sequence`` gapless.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_subjects (
            subject_type varchar(16) NOT NULL,
            subject_id varchar(40) NOT NULL,
            last_sequence integer NOT NULL,
            PRIMARY KEY (subject_type, subject_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE events (
            id varchar(40) PRIMARY KEY,
            position bigint GENERATED ALWAYS AS IDENTITY,
            txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            type varchar(32) NOT NULL,
            subject_type varchar(16) NOT NULL,
            subject_id varchar(40) NOT NULL,
            sequence integer NOT NULL,
            data jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            CONSTRAINT events_subject_sequence UNIQUE (subject_type, subject_id, sequence),
            CONSTRAINT events_sequence_positive CHECK (sequence > 0)
        )
        """
    )
    op.execute("CREATE INDEX events_feed ON events (txid, position)")
    op.execute("CREATE INDEX events_created ON events (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE events")
    op.execute("DROP TABLE event_subjects")
