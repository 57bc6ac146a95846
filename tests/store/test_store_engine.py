"""Engines: SQLite tuning, PostgreSQL driver mapping, missing drivers and the public API."""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import controltower.store
from controltower.errors import ConfigError
from controltower.store import create_store_engine


def test_sqlite_is_tuned_and_its_directory_made(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "traces.db"
    engine = create_store_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        engine.dispose()
    assert path.exists()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }


def test_sqlite_in_memory() -> None:
    engine = create_store_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg3(scheme: str) -> None:
    engine = create_store_engine(f"{scheme}://u@127.0.0.1:1/db")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_missing_postgres_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"pip install 'controltower\[postgres\]'"):
        create_store_engine("postgresql://u@127.0.0.1:1/db")


def test_unknown_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown database driver"):
        create_store_engine("nosuchdb://x")


def test_not_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        create_store_engine("not a url")


def test_public_api_matches_all() -> None:
    # "@py_builtins" and "@pytest_ar": pytest rewrites the asserts of a package that ships a
    # pytest plugin (controltower.evals.pytest), and such names are no Python identifiers
    exported = {n for n in dir(controltower.store) if not n.startswith(("_", "@"))}
    modules = {info.name for info in pkgutil.iter_modules(controltower.store.__path__)}
    assert exported - modules - {"annotations"} == set(controltower.store.__all__)
