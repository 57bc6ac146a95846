"""Migrations run from an empty database to head on SQLite and PostgreSQL, twice."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from controltower.store import create_store_engine, current_revision, upgrade
from controltower.store.engine import HEAD_REVISION, migrate
from controltower.store.schema import SEARCH_INDEXES, build_metadata

EXPECTED_INDEXES = {
    "traces": {
        "ix_traces_start_us_id",
        "ix_traces_project_start_us",
        "ix_traces_user_id_start_us",
        "ix_traces_session_id_start_us",
        "ix_traces_name_start_us",
        "ix_traces_model_start_us",
    },
    "spans": {"ix_spans_trace_id", "ix_spans_prompt"},
    "scores": {"ix_scores_trace_id", "ix_scores_name_created_us"},
    "prompts": set(),
    "prompt_versions": set(),
    "prompt_labels": set(),
    "prompt_label_moves": {"ix_prompt_label_moves_prompt_label_id"},
    "audit_events": {"ix_audit_events_target_id"},
    "datasets": set(),
    "dataset_versions": {"ix_dataset_versions_created_us"},
    "dataset_item_contents": set(),
    "dataset_version_items": set(),
    "dataset_tags": set(),
    "eval_runs": {"ix_eval_runs_name_created_us", "ix_eval_runs_created_us"},
    "eval_results": set(),
    "eval_cache": set(),
    "review_queues": {"ix_review_queues_name"},
    "review_tasks": {
        "ix_review_tasks_queue_id_item_key",
        "ix_review_tasks_queue_id_status_position",
        "ix_review_tasks_run_id",
    },
    "review_scores": {"ix_review_scores_queue_id"},
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
    assert current_revision(engine) == HEAD_REVISION
    inspector = sa.inspect(engine)
    assert set(EXPECTED_INDEXES) | {"alembic_version"} <= set(inspector.get_table_names())
    for table, expected in EXPECTED_INDEXES.items():
        found = {index["name"] for index in inspector.get_indexes(table)}
        assert found - {"ix_traces_input_trgm", "ix_traces_output_trgm"} == expected
    assert inspector.get_pk_constraint("spans")["constrained_columns"] == ["id", "trace_id"]
    pk = inspector.get_pk_constraint("prompt_versions")["constrained_columns"]
    assert pk == ["name", "version"]  # one number per prompt, even under concurrent pushes


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    migrate(engine)  # Alembic agrees that a freshly created database is at head
    assert current_revision(engine) == HEAD_REVISION


def test_migrations_match_schema(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as conn, warnings.catch_warnings():
        # the PostgreSQL trigram indexes are on expressions, which Alembic cannot compare
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, build_metadata())
    search = {name for name, _ in SEARCH_INDEXES}
    assert [d for d in diff if not (d[0] == "remove_index" and d[1].name in search)] == []


def test_text_search_indexes_exist_on_postgresql(engine: Engine) -> None:
    migrate(engine)
    names = {i["name"] for i in _indexes_with_expressions(engine)}
    if engine.dialect.name == "postgresql":
        assert {"ix_traces_input_trgm", "ix_traces_output_trgm"} <= names
    else:
        assert not names & {"ix_traces_input_trgm", "ix_traces_output_trgm"}


def _indexes_with_expressions(engine: Engine) -> list[dict[str, str]]:
    if engine.dialect.name != "postgresql":
        return [{"name": n} for n in _sqlite_index_names(engine)]
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'traces' "
            "AND schemaname = current_schema()"
        )
        return [{"name": row[0]} for row in rows]


def _sqlite_index_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        return [row[0] for row in rows]


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    from controltower.store.engine import _alembic_config

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == HEAD_REVISION
