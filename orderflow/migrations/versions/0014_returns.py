"""returns

Revision ID: 0014_returns
Revises: 0013_credit_notes

Returns of shipped units (``returns``, ``ret_…``) and their lines against the order's lines
(``return_lines``: asked for, received, restocked). A received unit put back on the shelf is
recorded in the stock ledger by a trigger, once per return line (the ledger's new ``return``
side; ``stock_ledger.return_line_id`` names the line and a unique index keeps it to one
entry), so ``orderflow audit`` can check that the shelf moved by exactly what came back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_returns"
down_revision: str | None = "0013_credit_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RETURN_STATUSES = "'requested','approved','received','refunded','rejected'"

_RESTOCK = """
CREATE FUNCTION orderflow_stock_ledger_returns() RETURNS trigger AS $$
BEGIN
  IF OLD.restocked_at IS NULL AND NEW.restocked_at IS NOT NULL THEN
    INSERT INTO stock_ledger (product_id, side, kind, delta, order_id, return_line_id)
    SELECT NEW.product_id, 'return', 'restock', NEW.received_quantity, r.order_id, NEW.id
    FROM returns r WHERE r.id = NEW.return_id;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""


def _stamp(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("note", sa.String(500)),
        sa.Column("refund_id", sa.String(40), sa.ForeignKey("refunds.id"), unique=True),
        sa.Column("refund_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("received_at", sa.DateTime(timezone=True)),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.CheckConstraint(f"status IN ({_RETURN_STATUSES})", name="returns_status"),
        sa.CheckConstraint("refund_amount >= 0", name="returns_refund_amount"),
        sa.CheckConstraint(
            "(status IN ('received', 'refunded')) = (received_at IS NOT NULL)",
            name="returns_received_at",
        ),
    )
    op.create_index("returns_order", "returns", ["order_id", "created_at"])
    op.create_table(
        "return_lines",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("return_id", sa.String(40), sa.ForeignKey("returns.id"), nullable=False),
        sa.Column("order_line_id", sa.BigInteger, sa.ForeignKey("order_lines.id"), nullable=False),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("received_quantity", sa.Integer),
        sa.Column("restock", sa.Boolean),
        sa.Column("restocked_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("return_id", "order_line_id", name="return_lines_one_per_line"),
        sa.CheckConstraint("quantity > 0", name="return_lines_quantity"),
        sa.CheckConstraint(
            "received_quantity IS NULL OR received_quantity BETWEEN 0 AND quantity",
            name="return_lines_received_quantity",
        ),
        sa.CheckConstraint(
            "restocked_at IS NULL OR (restock AND received_quantity > 0)",
            name="return_lines_restocked",
        ),
    )
    op.create_index("return_lines_order_line", "return_lines", ["order_line_id"])
    op.add_column("stock_ledger", sa.Column("return_line_id", sa.BigInteger))
    op.drop_constraint("stock_ledger_side", "stock_ledger", type_="check")
    op.create_check_constraint(
        "stock_ledger_side", "stock_ledger", "side IN ('shelf', 'reservation', 'return')"
    )
    op.create_index(
        "stock_ledger_return_once",
        "stock_ledger",
        ["return_line_id"],
        unique=True,
        postgresql_where=sa.text("side = 'return'"),
    )
    op.execute(_RESTOCK)
    op.execute(
        """CREATE TRIGGER stock_ledger_returns AFTER UPDATE OF restocked_at ON return_lines
           FOR EACH ROW EXECUTE FUNCTION orderflow_stock_ledger_returns()"""
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS stock_ledger_returns ON return_lines")
    op.execute("DROP FUNCTION IF EXISTS orderflow_stock_ledger_returns()")
    op.drop_index("stock_ledger_return_once", table_name="stock_ledger")
    op.execute("DELETE FROM stock_ledger WHERE side = 'return'")
    op.drop_constraint("stock_ledger_side", "stock_ledger", type_="check")
    op.create_check_constraint(
        "stock_ledger_side", "stock_ledger", "side IN ('shelf', 'reservation')"
    )
    op.drop_column("stock_ledger", "return_line_id")
    op.drop_index("return_lines_order_line", table_name="return_lines")
    op.drop_table("return_lines")
    op.drop_index("returns_order", table_name="returns")
    op.drop_table("returns")
