"""an index of spans by prompt version, for per-version metrics

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index the spans that have a prompt by prompt name, version and start time."""
    op.create_index(
        "ix_spans_prompt",
        "spans",
        ["prompt_name", "prompt_version", "start_us"],
        sqlite_where=sa.text("prompt_name IS NOT NULL"),
        postgresql_where=sa.text("prompt_name IS NOT NULL"),
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_spans_prompt", "spans")
