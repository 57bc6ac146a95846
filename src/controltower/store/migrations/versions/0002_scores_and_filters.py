"""scores, and indexes for the trace filters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add traces.model with the name and model indexes, and the scores table."""
    op.add_column("traces", sa.Column("model", sa.String()))
    op.create_index("ix_traces_name_start_us", "traces", ["name", "start_us"])
    op.create_index("ix_traces_model_start_us", "traces", ["model", "start_us"])
    op.create_table(
        "scores",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16)),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("data_type", sa.String(), nullable=False),
        sa.Column("value_num", sa.Float),
        sa.Column("value_str", sa.Text),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("author", sa.String()),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_scores_trace_id", "scores", ["trace_id"])
    op.create_index("ix_scores_name_created_us", "scores", ["name", "created_us"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("scores")
    op.drop_index("ix_traces_model_start_us", "traces")
    op.drop_index("ix_traces_name_start_us", "traces")
    op.drop_column("traces", "model")
