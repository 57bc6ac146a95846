"""covering indexes for the session and user lists, trigram search on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from controltower.store.schema import SEARCH_INDEXES, create_search_indexes

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GROUPED = [
    "end_us",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "project",
]


def upgrade() -> None:
    """Rebuild the user and session indexes to cover the list totals; add search indexes."""
    op.drop_index("ix_traces_user_id_start_us", "traces")
    op.drop_index("ix_traces_session_id_start_us", "traces")
    op.create_index(
        "ix_traces_user_id_start_us", "traces", ["user_id", "start_us", "session_id", *_GROUPED]
    )
    op.create_index(
        "ix_traces_session_id_start_us", "traces", ["session_id", "start_us", "user_id", *_GROUPED]
    )
    create_search_indexes(op.get_bind())


def downgrade() -> None:
    """Back to the narrow indexes, without search indexes."""
    for name, _ in SEARCH_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_traces_user_id_start_us", "traces")
    op.drop_index("ix_traces_session_id_start_us", "traces")
    op.create_index("ix_traces_user_id_start_us", "traces", ["user_id", "start_us"])
    op.create_index("ix_traces_session_id_start_us", "traces", ["session_id", "start_us"])
