"""human review: queues with a rubric, their tasks (assignment, claims), the scores given

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controltower.store.schema import json_type

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("review_scores", "review_tasks", "review_queues")


def upgrade() -> None:
    """Create the review tables."""
    op.create_table(
        "review_queues",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("rubric", json_type(), nullable=False),
        sa.Column("source", json_type(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String()),
    )
    op.create_table(
        "review_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("queue_id", sa.String(64), sa.ForeignKey("review_queues.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("item_key", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("item_id", sa.String()),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String()),
        sa.Column("claimed_by", sa.String()),
        sa.Column("claimed_us", sa.BigInteger),
        sa.Column("reviewer", sa.String()),
        sa.Column("done_us", sa.BigInteger),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "review_scores",
        sa.Column(
            "task_id",
            sa.Integer,
            sa.ForeignKey("review_tasks.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("queue_id", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("scores", json_type(), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_review_queues_name", "review_queues", ["name"], unique=True)
    op.create_index(
        "ix_review_tasks_queue_id_item_key", "review_tasks", ["queue_id", "item_key"], unique=True
    )
    op.create_index(
        "ix_review_tasks_queue_id_status_position",
        "review_tasks",
        ["queue_id", "status", "position"],
    )
    op.create_index("ix_review_tasks_run_id", "review_tasks", ["run_id"])
    op.create_index("ix_review_scores_queue_id", "review_scores", ["queue_id"])


def downgrade() -> None:
    """Drop them."""
    for table in TABLES:
        op.drop_table(table)
