"""credit notes, order changes (reduced amount, partial stock release), e-mails per refund

Revision ID: 0013_credit_notes
Revises: 0012_webhook_notices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_credit_notes"
down_revision: str | None = "0012_webhook_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The stock ledger's reservation side (0003) learns one more movement: a reservation lowered
# because its order line was (``PATCH /orders/{id}``) records the units it gave back.
_RESERVATIONS = """
CREATE OR REPLACE FUNCTION orderflow_stock_ledger_reservations() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta, order_id)
    VALUES (NEW.product_id, 'reservation', 'reserve', -NEW.quantity, NEW.order_id);
  ELSIF OLD.released_at IS NULL AND NEW.released_at IS NOT NULL THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta, order_id)
    VALUES (NEW.product_id, 'reservation', 'release', NEW.quantity, NEW.order_id);
  ELSIF OLD.released_at IS NULL AND NEW.quantity < OLD.quantity THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta, order_id)
    VALUES (NEW.product_id, 'reservation', 'lower', OLD.quantity - NEW.quantity, NEW.order_id);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""

_RESERVATIONS_BEFORE = """
CREATE OR REPLACE FUNCTION orderflow_stock_ledger_reservations() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta, order_id)
    VALUES (NEW.product_id, 'reservation', 'reserve', -NEW.quantity, NEW.order_id);
  ELSIF OLD.released_at IS NULL AND NEW.released_at IS NOT NULL THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta, order_id)
    VALUES (NEW.product_id, 'reservation', 'release', NEW.quantity, NEW.order_id);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "credit_note_counters",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last_number", sa.Integer, nullable=False),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("refund_id", sa.String(40), sa.ForeignKey("refunds.id"), nullable=False),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("invoice_number", sa.String(32), nullable=False),
        sa.Column("pdf", sa.LargeBinary, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.UniqueConstraint("refund_id", name="credit_notes_one_per_refund"),
        sa.UniqueConstraint("number", name="credit_notes_number"),
        sa.UniqueConstraint("year", "sequence", name="credit_notes_year_sequence"),
        sa.CheckConstraint("amount > 0", name="credit_notes_amount"),
    )
    op.create_index("credit_notes_order", "credit_notes", ["order_id", "sequence"])
    # What changes took off a paid order's lines: its capture is its total plus this.
    op.add_column(
        "orders", sa.Column("reduced_amount", sa.BigInteger, nullable=False, server_default="0")
    )
    op.create_check_constraint("orders_reduced_amount", "orders", "reduced_amount >= 0")
    # What the sweeper looks for every few seconds: succeeded refunds owing a credit note or
    # an e-mail, changes owing an e-mail (recent ones: partial indexes stay small).
    op.create_index(
        "refunds_succeeded", "refunds", ["updated_at"], postgresql_where="status = 'succeeded'"
    )
    op.create_index(
        "order_events_changes",
        "order_events",
        ["created_at"],
        postgresql_where="type = 'order_updated'",
    )
    # E-mails sent once per refund or per change are claimed as "<kind>:<id>".
    op.alter_column("emails", "kind", type_=sa.String(64))
    op.execute(_RESERVATIONS)
    op.execute("DROP TRIGGER stock_ledger_reservations ON stock_reservations")
    op.execute(
        """CREATE TRIGGER stock_ledger_reservations
           AFTER INSERT OR UPDATE OF released_at, quantity ON stock_reservations
           FOR EACH ROW EXECUTE FUNCTION orderflow_stock_ledger_reservations()"""
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER stock_ledger_reservations ON stock_reservations")
    op.execute(
        """CREATE TRIGGER stock_ledger_reservations
           AFTER INSERT OR UPDATE OF released_at ON stock_reservations
           FOR EACH ROW EXECUTE FUNCTION orderflow_stock_ledger_reservations()"""
    )
    op.execute(_RESERVATIONS_BEFORE)
    op.execute("DELETE FROM emails WHERE length(kind) > 16")
    op.alter_column("emails", "kind", type_=sa.String(16))
    op.drop_index("order_events_changes", table_name="order_events")
    op.drop_index("refunds_succeeded", table_name="refunds")
    op.drop_constraint("orders_reduced_amount", "orders")
    op.drop_column("orders", "reduced_amount")
    op.drop_index("credit_notes_order", table_name="credit_notes")
    op.drop_table("credit_notes")
    op.drop_table("credit_note_counters")
