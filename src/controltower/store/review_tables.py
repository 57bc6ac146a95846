"""The tables of human review: queues, their tasks (one per item), and the scores given."""

from __future__ import annotations

import sqlalchemy as sa

from controltower.store.eval_tables import JsonType


def review_tables(metadata: sa.MetaData, json_type: JsonType) -> None:
    """Queues (rubric and source as JSON), tasks in order, a score per task."""
    sa.Table(
        "review_queues",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("rubric", json_type(), nullable=False),
        sa.Column("source", json_type(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String()),
        sa.Index("ix_review_queues_name", "name", unique=True),
    )
    # a claim (claimed_by, claimed_us) is the row a reviewer's conditional UPDATE wins
    sa.Table(
        "review_tasks",
        metadata,
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
        sa.Index("ix_review_tasks_queue_id_item_key", "queue_id", "item_key", unique=True),
        sa.Index("ix_review_tasks_queue_id_status_position", "queue_id", "status", "position"),
        sa.Index("ix_review_tasks_run_id", "run_id"),
    )
    sa.Table(
        "review_scores",
        metadata,
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
        sa.Index("ix_review_scores_queue_id", "queue_id"),
    )
