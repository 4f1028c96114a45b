"""stock ledger: every movement of stock, written by triggers, for ``orderflow audit``

Two sides of every movement are recorded, each by a trigger, with the transaction that made
it: the shelf (``products.stock`` changed: created, adjusted by an admin, or moved by the
pipeline) and the reservations (a line reserved or released). Stock is conserved when, in
every transaction that touched a product's reservations, the shelf moved by exactly what the
reservations moved, and the shelf never moved on its own except by an admin. The
application writes nothing here; the triggers cannot be forgotten by a new code path.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SHELF = """
CREATE FUNCTION orderflow_stock_ledger_shelf() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta)
    VALUES (NEW.id, 'shelf', 'create', NEW.stock);
  ELSIF NEW.stock <> OLD.stock THEN
    -- An admin's change also sets updated_at; the pipeline's moves change only the stock.
    INSERT INTO stock_ledger (product_id, side, kind, delta)
    VALUES (NEW.id, 'shelf',
            CASE WHEN NEW.updated_at IS DISTINCT FROM OLD.updated_at
                 THEN 'adjust' ELSE 'move' END,
            NEW.stock - OLD.stock);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""

_RESERVATIONS = """
CREATE FUNCTION orderflow_stock_ledger_reservations() RETURNS trigger AS $$
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
        "stock_ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("side", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column(
            "txid", sa.BigInteger(), server_default=sa.text("txid_current()"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("side IN ('shelf', 'reservation')", name="stock_ledger_side"),
        # Truncating products (tests) takes the ledger with it (CASCADE).
        sa.ForeignKeyConstraint(["product_id"], ["products.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("stock_ledger_product_tx", "stock_ledger", ["product_id", "txid"])
    # What is on the shelf now, and what is held, open the ledger of existing products.
    op.execute(
        """INSERT INTO stock_ledger (product_id, side, kind, delta)
           SELECT id, 'shelf', 'opening', stock FROM products"""
    )
    op.execute(_SHELF)
    op.execute(_RESERVATIONS)
    op.execute(
        """CREATE TRIGGER stock_ledger_shelf AFTER INSERT OR UPDATE OF stock ON products
           FOR EACH ROW EXECUTE FUNCTION orderflow_stock_ledger_shelf()"""
    )
    op.execute(
        """CREATE TRIGGER stock_ledger_reservations
           AFTER INSERT OR UPDATE OF released_at ON stock_reservations
           FOR EACH ROW EXECUTE FUNCTION orderflow_stock_ledger_reservations()"""
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS stock_ledger_reservations ON stock_reservations")
    op.execute("DROP TRIGGER IF EXISTS stock_ledger_shelf ON products")
    op.execute("DROP FUNCTION IF EXISTS orderflow_stock_ledger_reservations()")
    op.execute("DROP FUNCTION IF EXISTS orderflow_stock_ledger_shelf()")
    op.drop_index("stock_ledger_product_tx", table_name="stock_ledger")
    op.drop_table("stock_ledger")
