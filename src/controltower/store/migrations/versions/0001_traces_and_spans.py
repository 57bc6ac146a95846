"""traces and spans

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _usage_columns() -> list[sa.Column[int]]:
    return [
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("cached_tokens", sa.BigInteger),
        sa.Column("reasoning_tokens", sa.BigInteger),
    ]


def upgrade() -> None:
    """Create the traces and spans tables with their indexes."""
    _create_traces()
    _create_spans()


def downgrade() -> None:
    """Drop the traces and spans tables."""
    op.drop_index("ix_spans_trace_id", table_name="spans")
    op.drop_table("spans")
    for name in ("session_id", "user_id", "project"):
        op.drop_index(f"ix_traces_{name}_start_us", table_name="traces")
    op.drop_index("ix_traces_start_us_id", table_name="traces")
    op.drop_table("traces")


def _create_traces() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("session_id", sa.String()),
        sa.Column("user_id", sa.String()),
        sa.Column("tags", _json()),
        sa.Column("metadata", _json()),
        sa.Column("input", _json()),
        sa.Column("output", _json()),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger),
        sa.Column("latency_us", sa.BigInteger),
        sa.Column("status", sa.String(), nullable=False),
        *_usage_columns(),
        sa.Column("total_tokens", sa.BigInteger),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("environment", sa.String()),
        sa.Column("release", sa.String()),
    )
    op.create_index("ix_traces_start_us_id", "traces", ["start_us", "id"])
    for name in ("project", "user_id", "session_id"):
        op.create_index(f"ix_traces_{name}_start_us", "traces", [name, "start_us"])


def _create_spans() -> None:
    op.create_table(
        "spans",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("parent_id", sa.String(16)),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger),
        sa.Column("latency_us", sa.BigInteger),
        sa.Column("input", _json()),
        sa.Column("output", _json()),
        sa.Column("model", sa.String()),
        sa.Column("provider", sa.String()),
        sa.Column("deployment", sa.String()),
        sa.Column("parameters", _json()),
        *_usage_columns(),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("ttft_us", sa.BigInteger),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("prompt_name", sa.String()),
        sa.Column("prompt_version", sa.Integer),
        sa.Column("attributes", _json()),
    )
    op.create_index("ix_spans_trace_id", "spans", ["trace_id"])
