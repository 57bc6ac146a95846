"""Fixtures of the store tests: each of the three stores in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controltower.store import (
    InMemoryEvalStore,
    InMemoryStore,
    SqlEvalStore,
    SqlTraceStore,
    open_eval_store,
    open_store,
)

TraceStore = InMemoryStore | SqlTraceStore
EvalStore = InMemoryEvalStore | SqlEvalStore


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


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def eval_store(request: pytest.FixtureRequest) -> Iterator[EvalStore]:
    """Each empty eval store in turn (datasets, runs, the cache and review queues)."""
    if request.param == "memory":
        yield InMemoryEvalStore()
        return
    made = open_eval_store(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield made
    finally:
        made.engine.dispose()
