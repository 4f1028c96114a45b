"""carts

Revision ID: 0009_carts
Revises: 0008

Carts and their items, and the order's ``cart_id``: at most one order per cart, enforced by
the unique constraint ``orders_one_per_cart`` whatever the concurrency. ``orders.cart_id`` is
not a foreign key: an order keeps the id of its cart after the cart is purged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_carts"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    # Nullable and without a default: adding it rewrites nothing and locks ``orders`` only
    # for the catalogue change; the unique index is built over NULLs only.
    op.add_column("orders", sa.Column("cart_id", sa.String(length=40), nullable=True))
    op.create_unique_constraint("orders_one_per_cart", "orders", ["cart_id"])
    op.create_table(
        "carts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'completed', 'expired')", name="carts_status"),
        sa.CheckConstraint(
            "(status = 'completed') = (order_id IS NOT NULL)", name="carts_order_when_completed"
        ),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name="carts_currency_iso"),
        sa.ForeignKeyConstraint(["customer_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    op.create_index("carts_customer", "carts", ["customer_id"])
    # What the expiry and the purge look for, oldest first, each in a small index.
    op.create_index(
        "carts_open_expiry", "carts", ["expires_at"], postgresql_where=sa.text("status = 'open'")
    )
    op.create_index(
        "carts_closed_updated",
        "carts",
        ["updated_at"],
        postgresql_where=sa.text("status <> 'open'"),
    )
    op.create_table(
        "cart_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("cart_id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_amount", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("quantity BETWEEN 1 AND 1000", name="cart_items_quantity"),
        sa.ForeignKeyConstraint(["cart_id"], ["carts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cart_id", "product_id", name="cart_items_one_per_product"),
    )


def downgrade() -> None:
    op.drop_table("cart_items")
    op.drop_table("carts")
    op.drop_constraint("orders_one_per_cart", "orders", type_="unique")
    op.drop_column("orders", "cart_id")
