"""The spend ledger's table: one entry per gateway call, beside (not inside) its trace.

Kept apart from the traces so that trace retention does not delete what finance reads,
and so that a report sums one narrow table. `cost` is what the provider billed (0 for an
answer the cache served, null when the price is unknown), `saved` what a cache hit would
have cost, `reserved` what the call's budgets held while it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

JsonType = Callable[[], Any]


def spend_tables(metadata: sa.MetaData, json_type: JsonType) -> None:
    """`spend`: keyed by request (trace id and the call's span id), so a resent record
    adds nothing."""
    sa.Table(
        "spend",
        metadata,
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
        sa.Index("ix_spend_at_us", "at_us"),
        sa.Index("ix_spend_project_at_us", "project", "at_us"),
    )
