"""sms

Revision ID: 0012_sms
Revises: 0010_shipments

Customers' ``phone`` (E.164) and ``sms_opt_in``; ``sms_messages``: one text message of each
kind (shipped, delivered) per order, written when the order makes the move and claimed by
the step that sends it (the unique constraint is the once-per-kind guarantee: Twilio takes
no idempotency key).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_sms"
down_revision: str | None = "0010_shipments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stamp(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("phone", sa.String(16), nullable=True))
    op.add_column(
        "users",
        sa.Column("sms_opt_in", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # E.164's shape only (a + and at most 15 digits); which numbers exist is checked by
    # ``auth.phones`` with libphonenumber's data, which changes with the numbering plans.
    op.create_check_constraint("users_phone_e164", "users", r"phone ~ '^\+[1-9][0-9]{1,14}$'")
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.UniqueConstraint("order_id", "kind", name="sms_one_per_kind"),
        sa.CheckConstraint("kind IN ('shipped','delivered')", name="sms_messages_kind"),
        sa.CheckConstraint(
            "status IN ('pending','sent','failed','skipped')", name="sms_messages_status"
        ),
    )
    op.create_index(
        "sms_messages_owed",
        "sms_messages",
        ["updated_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("sms_messages_owed", table_name="sms_messages")
    op.drop_table("sms_messages")
    op.drop_constraint("users_phone_e164", "users")
    op.drop_column("users", "sms_opt_in")
    op.drop_column("users", "phone")
