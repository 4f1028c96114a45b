"""integration keys

Revision ID: 0006
Revises: 0005

Opaque bearer keys for machines (``ofk_…``): only a SHA-256 of the secret is stored.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_keys (
            id varchar(40) PRIMARY KEY,
            name varchar(200) NOT NULL,
            prefix varchar(16) NOT NULL,
            secret_hash bytea NOT NULL,
            scopes text[] NOT NULL,
            created_by varchar(40) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked_at timestamptz,
            CONSTRAINT api_keys_secret_hash UNIQUE (secret_hash),
            CONSTRAINT api_keys_scopes CHECK (
                scopes <@ ARRAY['orders:read', 'orders:write', 'products:write', 'events:read',
                                'webhooks:manage']::text[]
                AND cardinality(scopes) > 0
            )
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
