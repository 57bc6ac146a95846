"""The spend ledger: one entry per gateway call, kept apart from trace retention

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controltower.store.schema import json_type

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the spend table."""
    op.create_table(
        "spend",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("user_id", sa.String()),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("deployment", sa.String()),
        sa.Column("prompt", sa.String()),
        sa.Column("tags", json_type()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("cost", sa.Float),
        sa.Column("reserved", sa.Float),
        sa.Column("saved", sa.Float),
        sa.Column("saved_tokens", sa.BigInteger),
    )
    op.create_index("ix_spend_at_us", "spend", ["at_us"])
    op.create_index("ix_spend_project_at_us", "spend", ["project", "at_us"])


def downgrade() -> None:
    """Drop the spend table."""
    op.drop_index("ix_spend_project_at_us", table_name="spend")
    op.drop_index("ix_spend_at_us", table_name="spend")
    op.drop_table("spend")
