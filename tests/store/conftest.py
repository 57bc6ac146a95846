"""Fixtures of the store tests: each of the three stores in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controltower.store import InMemoryStore, SqlTraceStore, open_store

TraceStore = InMemoryStore | SqlTraceStore


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
