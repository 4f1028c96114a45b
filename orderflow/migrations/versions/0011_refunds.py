"""refunds as rows of their own, partial refunds, the order's money counters

Revision ID: 0011
Revises: 0009_carts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009_carts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("provider_id", sa.String(255), unique=True),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint("amount > 0", name="refunds_amount"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="refunds_status"),
    )
    op.create_index("refunds_order", "refunds", ["order_id", "created_at"])
    op.create_index(
        "refunds_pending", "refunds", ["updated_at"], postgresql_where="status = 'pending'"
    )
    for column in ("captured_amount", "refunded_amount", "refund_pending_amount"):
        op.add_column(
            "orders", sa.Column(column, sa.BigInteger, nullable=False, server_default="0")
        )
    # What was captured, and the one full refund each order could have had so far.
    op.execute(
        """UPDATE orders o SET captured_amount = p.amount FROM payments p
           WHERE p.order_id = o.id AND p.kind = 'charge' AND p.status = 'succeeded'"""
    )
    op.execute(
        """INSERT INTO refunds (id, order_id, amount, currency, status, reason, provider_id,
                                created_at, updated_at)
           SELECT 'ref_' || lpad(p.id::text, 26, '0'), p.order_id, p.amount, p.currency,
                  CASE WHEN p.status = 'succeeded' THEN 'succeeded' ELSE 'pending' END,
                  'order ended after payment', p.provider_id, p.created_at, p.updated_at
           FROM payments p WHERE p.kind = 'refund' AND p.amount > 0"""
    )
    op.execute(
        """UPDATE orders o SET
             refunded_amount = coalesce((SELECT sum(amount) FROM refunds r
                               WHERE r.order_id = o.id AND r.status = 'succeeded'), 0),
             refund_pending_amount = coalesce((SELECT sum(amount) FROM refunds r
                               WHERE r.order_id = o.id AND r.status = 'pending'), 0)"""
    )
    op.execute("DELETE FROM payments WHERE kind = 'refund'")
    # Promise 9, kept by the database itself: pending + succeeded refunds within the capture.
    op.create_check_constraint(
        "orders_refunds_within_capture",
        "orders",
        "refunded_amount >= 0 AND refund_pending_amount >= 0 "
        "AND refunded_amount + refund_pending_amount <= captured_amount",
    )
    op.drop_constraint("orders_payment_status", "orders")
    op.alter_column("orders", "payment_status", type_=sa.String(24))
    op.create_check_constraint(
        "orders_payment_status",
        "orders",
        "payment_status IN ('unpaid','processing','paid','failed','partially_refunded','refunded')",
    )


def downgrade() -> None:
    op.drop_constraint("orders_payment_status", "orders")
    op.execute(
        "UPDATE orders SET payment_status = 'paid' WHERE payment_status = 'partially_refunded'"
    )
    op.create_check_constraint(
        "orders_payment_status",
        "orders",
        "payment_status IN ('unpaid','processing','paid','failed','refunded')",
    )
    op.drop_constraint("orders_refunds_within_capture", "orders")
    for column in ("captured_amount", "refunded_amount", "refund_pending_amount"):
        op.drop_column("orders", column)
    op.drop_table("refunds")
