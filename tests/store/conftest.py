"""Fixtures of the store tests: a fresh PostgreSQL schema per test, and the three stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from controltower.store import InMemoryStore, SqlTraceStore, open_store

POSTGRES_URL_ENV = "CONTROLTOWER_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

TraceStore = InMemoryStore | SqlTraceStore


def _unreachable(reason: str) -> None:
    # In CI a missing server is a broken pipeline, not a reason to skip silently.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}")
    pytest.skip(f"PostgreSQL not reachable ({reason}); set {POSTGRES_URL_ENV} or start it")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The base URL of the test PostgreSQL server; skips (or fails on CI) when unreachable."""
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    try:
        import psycopg
    except ImportError as exc:
        _unreachable(f"psycopg is not installed: {exc}")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        _unreachable(f"{url}: {exc}")
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema; the schema is dropped afterwards."""
    import psycopg

    schema = f"ct_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in postgres_server_url else "?"
    options = quote(f"-csearch_path={schema}", safe="")
    try:
        yield f"{postgres_server_url}{separator}options={options}"
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a SQLite file in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'traces.db'}"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[TraceStore]:
    """Each trace store in turn: the in-memory fake, SQLite and PostgreSQL."""
    if request.param == "memory":
        made: TraceStore = InMemoryStore()
    else:
        made = open_store(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield made
    finally:
        made.close()
