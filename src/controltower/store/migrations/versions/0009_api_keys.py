"""API keys: the keys (the hash of each secret) and the counter every change moves

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controltower.store.schema import json_type

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the API key tables."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String()),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("models", json_type(), nullable=False),
        sa.Column("expires_us", sa.BigInteger),
        sa.Column("revoked_us", sa.BigInteger),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String()),
        sa.Column("last_used_us", sa.BigInteger),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_api_keys_version", "api_keys", ["version"])
    op.create_index("ix_api_keys_project", "api_keys", ["project", "created_us"])
    op.create_table(
        "api_key_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop the API key tables."""
    op.drop_table("api_key_version")
    op.drop_index("ix_api_keys_project", table_name="api_keys")
    op.drop_index("ix_api_keys_version", table_name="api_keys")
    op.drop_table("api_keys")
