"""prompt registry: prompts, versions, labels, label history, and the audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controltower.store.schema import json_type

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the prompt tables and audit_events."""
    op.create_table(
        "prompts",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("name", sa.String(), sa.ForeignKey("prompts.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("content", json_type(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("author", sa.String()),
        sa.Column("source", sa.Text),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt", sa.String(), sa.ForeignKey("prompts.name"), primary_key=True),
        sa.Column("label", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("protected", sa.Boolean, nullable=False),
        sa.Column("split", json_type()),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "prompt_label_moves",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt", sa.String(), sa.ForeignKey("prompts.name"), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_version", sa.Integer),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("actor", sa.String()),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("split", json_type()),
    )
    op.create_index(
        "ix_prompt_label_moves_prompt_label_id", "prompt_label_moves", ["prompt", "label", "id"]
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String()),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("before", json_type()),
        sa.Column("after", json_type()),
    )
    op.create_index("ix_audit_events_target_id", "audit_events", ["target", "id"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("audit_events")
    op.drop_table("prompt_label_moves")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
    op.drop_table("prompts")
