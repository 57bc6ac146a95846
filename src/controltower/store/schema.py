"""The store's tables (traces, prompts, audit): one SQLAlchemy Core schema for both databases."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from controltower.store.eval_tables import dataset_tables, eval_tables
from controltower.store.key_tables import key_tables
from controltower.store.review_tables import review_tables
from controltower.store.spend_tables import spend_tables

log = logging.getLogger("controltower.store")

# Times are microseconds since the Unix epoch, the unit of controltower.domain.
# Free-text columns have no length: on PostgreSQL an over-long value would fail a whole batch.
TRACE_JSON_COLUMNS = ("tags", "meta", "input", "output")
SPAN_JSON_COLUMNS = ("input", "output", "parameters", "attributes")


_GROUPED = (
    "end_us",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "project",
)
# trigram indexes for text search in inputs and outputs (PostgreSQL with pg_trgm only)
SEARCH_INDEXES = (("ix_traces_input_trgm", "input"), ("ix_traces_output_trgm", "output"))


def create_search_indexes(conn: Connection) -> bool:
    """Create the trigram indexes on PostgreSQL when pg_trgm can be had; whether they exist.

    Without them text search scans every trace. The extension may be refused (it needs the
    CREATE privilege on the database): search then still works, only slower.
    """
    if conn.dialect.name != "postgresql":
        return False
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            schema = conn.exec_driver_sql(
                "SELECT extnamespace::regnamespace::text FROM pg_extension "
                "WHERE extname = 'pg_trgm'"
            ).scalar_one()
            for name, column in SEARCH_INDEXES:
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {name} ON traces "
                    f"USING gin ((CAST({column} AS TEXT)) {schema}.gin_trgm_ops)"
                )
    except sa.exc.DBAPIError as exc:
        log.warning("text search indexes not created (%s); text search scans all traces", exc)
        return False
    return True


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL."""
    return sa.JSON().with_variant(JSONB(), "postgresql")


@lru_cache(maxsize=1)
def store_tables() -> Mapping[str, sa.Table]:
    """The tables of one MetaData that every store shares: building them costs about
    20 ms, which a store opened per request or per eval run should not pay again.
    Read only; migrations and schema creation use a fresh `build_metadata()`."""
    return build_metadata().tables


def build_metadata() -> sa.MetaData:
    """A fresh MetaData holding every table: traces, spans, scores, prompts, audit, the
    dead letters, datasets, eval runs, review queues, API keys and the spend ledger."""
    metadata = sa.MetaData()
    _traces_table(metadata)
    _spans_table(metadata)
    _scores_table(metadata)
    _prompt_tables(metadata)
    _audit_table(metadata)
    _dead_letters_table(metadata)
    dataset_tables(metadata, json_type)
    eval_tables(metadata, json_type)
    review_tables(metadata, json_type)
    key_tables(metadata, json_type)
    spend_tables(metadata, json_type)
    return metadata


def _traces_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "traces",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("session_id", sa.String()),
        sa.Column("user_id", sa.String()),
        sa.Column("tags", json_type()),
        sa.Column("metadata", json_type(), key="meta"),
        sa.Column("input", json_type()),
        sa.Column("output", json_type()),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger),
        sa.Column("latency_us", sa.BigInteger),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("cached_tokens", sa.BigInteger),
        sa.Column("reasoning_tokens", sa.BigInteger),
        sa.Column("total_tokens", sa.BigInteger),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("environment", sa.String()),
        sa.Column("release", sa.String()),
        # the model of its (first seen) generation span: what the model filter matches
        sa.Column("model", sa.String()),
        sa.Index("ix_traces_start_us_id", "start_us", "id"),
        sa.Index("ix_traces_name_start_us", "name", "start_us"),
        sa.Index("ix_traces_model_start_us", "model", "start_us"),
        sa.Index("ix_traces_project_start_us", "project", "start_us"),
        # the session and user lists aggregate from these indexes alone (covering)
        sa.Index("ix_traces_user_id_start_us", "user_id", "start_us", "session_id", *_GROUPED),
        sa.Index("ix_traces_session_id_start_us", "session_id", "start_us", "user_id", *_GROUPED),
    )


def _spans_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "spans",
        metadata,
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("parent_id", sa.String(16)),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger),
        sa.Column("latency_us", sa.BigInteger),
        sa.Column("input", json_type()),
        sa.Column("output", json_type()),
        sa.Column("model", sa.String()),
        sa.Column("provider", sa.String()),
        sa.Column("deployment", sa.String()),
        sa.Column("parameters", json_type()),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("cached_tokens", sa.BigInteger),
        sa.Column("reasoning_tokens", sa.BigInteger),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("ttft_us", sa.BigInteger),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("prompt_name", sa.String()),
        sa.Column("prompt_version", sa.Integer),
        sa.Column("attributes", json_type()),
        sa.Index("ix_spans_trace_id", "trace_id"),
        # per-version metrics of a prompt read only its spans; partial, so that the many
        # spans without a prompt cost the write path nothing
        sa.Index(
            "ix_spans_prompt",
            "prompt_name",
            "prompt_version",
            "start_us",
            sqlite_where=sa.text("prompt_name IS NOT NULL"),
            postgresql_where=sa.text("prompt_name IS NOT NULL"),
        ),
    )


def _scores_table(metadata: sa.MetaData) -> sa.Table:
    # value_num holds numbers and booleans (1/0), value_str categories; data_type says which
    return sa.Table(
        "scores",
        metadata,
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
        sa.Index("ix_scores_trace_id", "trace_id"),
        sa.Index("ix_scores_name_created_us", "name", "created_us"),
    )


def _prompt_tables(metadata: sa.MetaData) -> None:
    # prompts.latest_version is the newest version; writers of one prompt lock its row
    sa.Table(
        "prompts",
        metadata,
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "prompt_versions",
        metadata,
        sa.Column("name", sa.String(), sa.ForeignKey("prompts.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("content", json_type(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("author", sa.String()),
        sa.Column("source", sa.Text),
    )
    sa.Table(
        "prompt_labels",
        metadata,
        sa.Column("prompt", sa.String(), sa.ForeignKey("prompts.name"), primary_key=True),
        sa.Column("label", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("protected", sa.Boolean, nullable=False),
        sa.Column("split", json_type()),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    # the id orders the moves: several can share a microsecond
    sa.Table(
        "prompt_label_moves",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt", sa.String(), sa.ForeignKey("prompts.name"), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_version", sa.Integer),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("actor", sa.String()),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("split", json_type()),
        sa.Index("ix_prompt_label_moves_prompt_label_id", "prompt", "label", "id"),
    )


def _audit_table(metadata: sa.MetaData) -> None:
    sa.Table(
        "audit_events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String()),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("before", json_type()),
        sa.Column("after", json_type()),
        sa.Index("ix_audit_events_target_id", "target", "id"),
    )


def _dead_letters_table(metadata: sa.MetaData) -> None:
    # records the store refused, as plain text (ASCII JSON), so no value can be refused again
    sa.Table(
        "dead_letters",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
