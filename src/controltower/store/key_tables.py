"""The API key tables: the keys (hash of the secret, never the secret), and the counter
that every change moves, so that each replica's key ring sees every change in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

JsonType = Callable[[], Any]


def key_tables(metadata: sa.MetaData, json_type: JsonType) -> None:
    """`api_keys` and `api_key_version` (one row: the change counter)."""
    sa.Table(
        "api_keys",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String()),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("models", json_type(), nullable=False),
        sa.Column("expires_us", sa.BigInteger),
        sa.Column("revoked_us", sa.BigInteger),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String()),
        sa.Column("last_used_us", sa.BigInteger),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Index("ix_api_keys_version", "version"),
        sa.Index("ix_api_keys_project", "project", "created_us"),
    )
    sa.Table(
        "api_key_version",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
