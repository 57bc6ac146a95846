"""Engines for SQLite (WAL, embedded default) and PostgreSQL (psycopg 3), and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from controltower.errors import ConfigError
from controltower.store.schema import build_metadata, create_search_indexes
from controltower.store.serialize import json_dumps, json_loads

_POSTGRES_HINT = "pip install 'controltower[postgres]'"


def create_store_engine(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, tuned for the trace store."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        _make_sqlite_parent(parsed)
    try:
        engine = sa.create_engine(
            parsed, json_serializer=json_dumps, json_deserializer=json_loads, pool_pre_ping=True
        )
    except (ImportError, NoSuchModuleError) as exc:
        raise ConfigError([_driver_problem(parsed, exc)]) from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _tune_sqlite)
    return engine


# The newest migration; a test keeps it equal to Alembic's head. Knowing it lets a start on
# an up-to-date database skip importing Alembic (a fifth of the gateway's start-up time).
HEAD_REVISION = "0010"


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest schema; a no-op when it is already there."""
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is None and _create_fresh(engine):
        return
    migrate(engine)


def migrate(engine: Engine) -> None:
    """Run the Alembic migrations up to head."""
    from alembic import command

    with engine.begin() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _create_fresh(engine: Engine) -> bool:
    """On an empty database, create the newest schema at once and stamp it as migrated.

    Same result as running every migration (a test compares the two), without the
    time Alembic takes to load: most of a first start on a new laptop.
    """
    metadata = build_metadata()
    with engine.begin() as connection:
        existing = set(sa.inspect(connection).get_table_names())
        if existing & set(metadata.tables):
            return False
        metadata.create_all(connection)
        create_search_indexes(connection)
        connection.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        connection.exec_driver_sql(
            f"INSERT INTO alembic_version (version_num) VALUES ('{HEAD_REVISION}')"
        )
    return True


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision of the database, or None when it was never migrated."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        found = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return None if found is None else str(found[0])


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError([f"store url {url!r} is not a database URL: {exc}"]) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _make_sqlite_parent(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _driver_problem(url: URL, exc: Exception) -> str:
    if url.get_backend_name() == "postgresql":
        return f"store url needs the PostgreSQL driver psycopg 3 ({exc}): {_POSTGRES_HINT}"
    return f"store url {url.render_as_string()!r} names an unknown database driver: {exc}"


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    location = str(Path(__file__).parent / "migrations")
    # Config values go through configparser interpolation, where % is special.
    config.set_main_option("script_location", location.replace("%", "%%"))
    return config
