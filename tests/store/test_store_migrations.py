"""Migrations run from an empty database to head on SQLite and PostgreSQL, twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from controltower.store import create_store_engine, current_revision, upgrade
from controltower.store.engine import migrate
from controltower.store.schema import build_metadata

EXPECTED_INDEXES = {
    "traces": {
        "ix_traces_start_us_id",
        "ix_traces_project_start_us",
        "ix_traces_user_id_start_us",
        "ix_traces_session_id_start_us",
        "ix_traces_name_start_us",
        "ix_traces_model_start_us",
    },
    "spans": {"ix_spans_trace_id"},
    "scores": {"ix_scores_trace_id", "ix_scores_name_created_us"},
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on an empty SQLite file or an empty PostgreSQL schema."""
    made = create_store_engine(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield made
    finally:
        made.dispose()


@pytest.mark.parametrize("way", [upgrade, migrate], ids=["created-fresh", "migrated"])
def test_upgrade_from_empty_to_head(engine: Engine, way: Callable[[Engine], None]) -> None:
    assert current_revision(engine) is None
    way(engine)
    assert current_revision(engine) == "0002"
    inspector = sa.inspect(engine)
    assert {"traces", "spans", "scores", "alembic_version"} <= set(inspector.get_table_names())
    for table, expected in EXPECTED_INDEXES.items():
        assert {index["name"] for index in inspector.get_indexes(table)} == expected
    assert inspector.get_pk_constraint("spans")["constrained_columns"] == ["id", "trace_id"]


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    migrate(engine)  # Alembic agrees that a freshly created database is at head
    assert current_revision(engine) == "0002"


def test_migrations_match_schema(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, build_metadata())
    assert diff == []


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    from controltower.store.engine import HEAD_REVISION, _alembic_config

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == HEAD_REVISION
