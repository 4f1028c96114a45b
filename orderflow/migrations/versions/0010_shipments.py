"""shipments

Revision ID: 0010_shipments
Revises: 0011

Shipments of an order (``shipments``), their lines against the order's lines
(``shipment_lines``), their tracking history (``shipment_events``, one row per status and
time) and the one label each may have (``shipment_labels``); the order's derived
``shipping_status``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_shipments"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SHIPMENT_STATUSES = (
    "'pending','label_created','in_transit','out_for_delivery','delivered','failure',"
    "'returned_to_sender','cancelled'"
)


def _stamp(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("shipping_status", sa.String(24), server_default="not_shipped", nullable=False),
    )
    # Orders shipped or delivered before shipments existed keep what their status said.
    op.execute(
        """UPDATE orders SET shipping_status = CASE status
               WHEN 'confirmed' THEN 'processing' WHEN 'shipped' THEN 'shipped'
               WHEN 'delivered' THEN 'delivered' ELSE 'not_shipped' END"""
    )
    op.create_check_constraint(
        "orders_shipping_status",
        "orders",
        "shipping_status IN ('not_shipped','processing','partially_shipped','shipped',"
        "'partially_delivered','delivered')",
    )
    op.create_table(
        "shipments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("carrier", sa.String(64), nullable=True),
        sa.Column("service", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(128), nullable=True),
        sa.Column("tracking_url", sa.Text(), nullable=True),
        sa.Column("label_url", sa.Text(), nullable=True),
        sa.Column("label_status", sa.String(16), nullable=False),
        sa.Column("provider_shipment_id", sa.String(255), nullable=True),
        sa.Column("provider_rate_id", sa.String(255), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.CheckConstraint(f"status IN ({_SHIPMENT_STATUSES})", name="shipments_status"),
        sa.CheckConstraint(
            "label_status IN ('none','pending','purchased','failed','voided')",
            name="shipments_label_status",
        ),
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])
    op.create_index("ix_shipments_tracking_number", "shipments", ["tracking_number"])
    op.create_table(
        "shipment_lines",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("shipment_id", sa.String(40), sa.ForeignKey("shipments.id"), nullable=False),
        sa.Column(
            "order_line_id", sa.BigInteger(), sa.ForeignKey("order_lines.id"), nullable=False
        ),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.UniqueConstraint("shipment_id", "order_line_id", name="shipment_lines_one_per_line"),
        sa.CheckConstraint("quantity > 0", name="shipment_lines_quantity"),
    )
    op.create_index("ix_shipment_lines_order_line_id", "shipment_lines", ["order_line_id"])
    op.create_table(
        "shipment_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("shipment_id", sa.String(40), sa.ForeignKey("shipments.id"), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.String(200), nullable=True),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        _stamp("received_at"),
        sa.UniqueConstraint("shipment_id", "status", "occurred_at", name="shipment_events_once"),
        sa.CheckConstraint(f"status IN ({_SHIPMENT_STATUSES})", name="shipment_events_status"),
    )
    op.create_table(
        "shipment_labels",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("shipment_id", sa.String(40), sa.ForeignKey("shipments.id"), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_label_id", sa.String(255), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(128), nullable=False),
        sa.Column("tracking_url", sa.Text(), nullable=True),
        sa.Column("label_url", sa.Text(), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        _stamp("created_at"),
        sa.UniqueConstraint("shipment_id", name="shipment_labels_one_per_shipment"),
    )


def downgrade() -> None:
    op.drop_table("shipment_labels")
    op.drop_table("shipment_events")
    op.drop_index("ix_shipment_lines_order_line_id", table_name="shipment_lines")
    op.drop_table("shipment_lines")
    op.drop_index("ix_shipments_tracking_number", table_name="shipments")
    op.drop_index("ix_shipments_order_id", table_name="shipments")
    op.drop_table("shipments")
    op.drop_constraint("orders_shipping_status", "orders")
    op.drop_column("orders", "shipping_status")
