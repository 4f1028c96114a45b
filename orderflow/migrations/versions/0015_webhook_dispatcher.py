"""webhook dispatcher

Revision ID: 0015_webhook_dispatcher
Revises: 0014_returns

Deliveries are no longer handed to the broker one message at a time: each webhooks worker's
dispatcher claims them from the table in batches (``orderflow.webhooks.dispatcher``).

- A new delivery wakes the dispatchers (``NOTIFY orderflow_webhooks`` from a trigger,
  delivered at commit, repeated notifications of one transaction delivered once).
- ``dispatched_at`` (when a delivery was handed to the broker) goes, and with it the outbox
  messages that handed deliveries over (the dispatchers find those deliveries themselves).
- The indexes follow the claim, and only open deliveries are in them (a delivery is written
  three times, inserted, claimed, recorded, and a version outside a partial index costs
  nothing there): each endpoint's due deliveries, oldest first (replacing the index of all
  due deliveries), and the subject index that decides whose turn it is, now of open
  deliveries only. The table keeps every delivery for 30 days; these stay the size of the
  backlog.
- A claim changes no indexed column, so with room on the page (fillfactor 80) PostgreSQL
  writes it as a heap-only tuple, touching no index. (The in-flight count per endpoint is
  therefore each dispatcher's own, not counted from the table.)
- Autovacuum after every 10,000 dead row versions instead of a fifth of the table: each
  finished delivery leaves a dead entry in the indexes of open deliveries, and every claim
  steps over those until a vacuum removes them (measured: a claim's PostgreSQL CPU grew from
  0.3 to 0.9 ms a delivery over 24,000 deliveries, and fell back to 0.38 after a VACUUM).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_webhook_dispatcher"
down_revision: str | None = "0014_returns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION webhook_deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('orderflow_webhooks', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries "
        "FOR EACH ROW EXECUTE FUNCTION webhook_deliveries_notify()"
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_due_by_endpoint ON webhook_deliveries "
        "(endpoint_id, next_attempt_at, id) WHERE status IN ('pending', 'failed')"
    )
    # Room on each page for a claim's new version next to the old (a heap-only update); and
    # vacuumed after every 10,000 dead versions, not after a fifth of the table (the
    # default): a finished delivery leaves dead entries in the indexes of open deliveries,
    # which every claim steps over until a vacuum removes them.
    op.execute(
        "ALTER TABLE webhook_deliveries SET (fillfactor = 80, "
        "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000)"
    )
    op.execute("DROP INDEX webhook_deliveries_due")
    op.execute("DROP INDEX webhook_deliveries_subject")
    op.execute(
        "CREATE INDEX webhook_deliveries_open_subject ON webhook_deliveries "
        "(endpoint_id, subject_type, subject_id, sequence) WHERE status IN ('pending', 'failed')"
    )
    op.execute("DELETE FROM outbox WHERE topic = 'orderflow.webhooks.deliver'")
    op.execute("ALTER TABLE webhook_deliveries DROP COLUMN dispatched_at")


def downgrade() -> None:
    op.execute("ALTER TABLE webhook_deliveries ADD COLUMN dispatched_at timestamptz")
    op.execute("DROP INDEX webhook_deliveries_open_subject")
    op.execute(
        "CREATE INDEX webhook_deliveries_subject ON webhook_deliveries "
        "(endpoint_id, subject_type, subject_id, sequence)"
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) "
        "WHERE status IN ('pending', 'failed')"
    )
    op.execute(
        "ALTER TABLE webhook_deliveries RESET (fillfactor, autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_threshold)"
    )
    op.execute("DROP INDEX webhook_deliveries_due_by_endpoint")
    op.execute("DROP TRIGGER webhook_deliveries_notify ON webhook_deliveries")
    op.execute("DROP FUNCTION webhook_deliveries_notify()")
