"""evaluation harness: versioned datasets (items shared by content), eval runs, results, cache

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controltower.store.schema import json_type

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "eval_cache",
    "eval_results",
    "eval_runs",
    "dataset_tags",
    "dataset_version_items",
    "dataset_item_contents",
    "dataset_versions",
    "datasets",
)


def upgrade() -> None:
    """Create the dataset and eval tables."""
    _datasets()
    _eval_runs()
    op.create_index("ix_dataset_versions_created_us", "dataset_versions", ["dataset", "created_us"])
    op.create_index("ix_eval_runs_name_created_us", "eval_runs", ["name", "created_us"])
    op.create_index("ix_eval_runs_created_us", "eval_runs", ["created_us"])


def downgrade() -> None:
    """Drop them."""
    for table in TABLES:
        op.drop_table(table)


def _datasets() -> None:
    # datasets.latest_version is the newest version; a push locks the dataset's row
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset", sa.String(), sa.ForeignKey("datasets.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("author", sa.String()),
    )
    # an item's content is stored once, however many versions hold it
    op.create_table(
        "dataset_item_contents",
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("data", json_type(), nullable=False),
    )
    op.create_table(
        "dataset_version_items",
        sa.Column("dataset", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset", "version"], ["dataset_versions.dataset", "dataset_versions.version"]
        ),
    )
    op.create_table(
        "dataset_tags",
        sa.Column("dataset", sa.String(), sa.ForeignKey("datasets.name"), primary_key=True),
        sa.Column("tag", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )


def _eval_runs() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("finished_us", sa.BigInteger),
        sa.Column("batch", sa.String()),
        sa.Column("branch", sa.String()),
        sa.Column("commit", sa.String()),
        sa.Column("record", json_type(), nullable=False),
        sa.Column("params", json_type(), nullable=False),
        sa.Column("summary", json_type(), nullable=False),
    )
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(), primary_key=True),
        sa.Column("repeat", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("output", json_type()),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("scores", json_type(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "eval_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", json_type(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
