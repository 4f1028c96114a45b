"""outbox notify trigger

Revision ID: 0005
Revises: 0004

Every INSERT of a message for the relay wakes it (``NOTIFY orderflow_outbox``, delivered at
commit) from the database itself: one round trip less for every writer, and no writer can
forget it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('orderflow_outbox', '');
            RETURN NULL;
        END $$
        """
    )
    # Only rows for the relay: a row a worker took over (written already dispatched) must not
    # wake it for nothing. Notifications repeated in one transaction are delivered once.
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH ROW "
        "WHEN (NEW.dispatched_at IS NULL) EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
