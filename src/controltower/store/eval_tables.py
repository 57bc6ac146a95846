"""The tables of datasets (versions, tags, items by content) and eval runs (results, cache)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

JsonType = Callable[[], TypeEngine[Any]]


def dataset_tables(metadata: sa.MetaData, json_type: JsonType) -> None:
    """Datasets: a version lists its items by id and content hash; contents are shared."""
    # datasets.latest_version is the newest version; a push locks the dataset's row
    sa.Table(
        "datasets",
        metadata,
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text),
    )
    sa.Table(
        "dataset_versions",
        metadata,
        sa.Column("dataset", sa.String(), sa.ForeignKey("datasets.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("author", sa.String()),
        sa.Index("ix_dataset_versions_created_us", "dataset", "created_us"),
    )
    # an item's content is stored once, however many versions hold it
    sa.Table(
        "dataset_item_contents",
        metadata,
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("data", json_type(), nullable=False),
    )
    sa.Table(
        "dataset_version_items",
        metadata,
        sa.Column("dataset", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset", "version"], ["dataset_versions.dataset", "dataset_versions.version"]
        ),
    )
    sa.Table(
        "dataset_tags",
        metadata,
        sa.Column("dataset", sa.String(), sa.ForeignKey("datasets.name"), primary_key=True),
        sa.Column("tag", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )


def eval_tables(metadata: sa.MetaData, json_type: JsonType) -> None:
    """Eval runs, their results (one row per item and repeat), and the call cache."""
    sa.Table(
        "eval_runs",
        metadata,
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
        sa.Index("ix_eval_runs_name_created_us", "name", "created_us"),
        sa.Index("ix_eval_runs_created_us", "created_us"),
    )
    sa.Table(
        "eval_results",
        metadata,
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
    sa.Table(
        "eval_cache",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", json_type(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
