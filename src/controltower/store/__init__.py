"""Storage of traces, spans and prompts in SQLite or PostgreSQL, and the in-memory fake."""

from __future__ import annotations

from sqlalchemy.engine import Engine as _Engine  # not re-exported

from controltower.store.engine import create_store_engine, current_revision, upgrade
from controltower.store.eval_runs import SqlEvalStore
from controltower.store.memory import InMemoryStore
from controltower.store.memory_evals import InMemoryEvalStore
from controltower.store.memory_reviews import InMemoryReviewStore
from controltower.store.prompts import SqlPromptStore
from controltower.store.reviews import SqlReviewStore
from controltower.store.traces import SqlTraceStore

__all__ = [
    "InMemoryEvalStore",
    "InMemoryReviewStore",
    "InMemoryStore",
    "SqlEvalStore",
    "SqlPromptStore",
    "SqlReviewStore",
    "SqlTraceStore",
    "create_store_engine",
    "current_revision",
    "open_eval_store",
    "open_prompt_store",
    "open_store",
    "upgrade",
]


def open_store(url: str) -> SqlTraceStore:
    """Open the trace store at a database URL, migrated to the newest schema."""
    return SqlTraceStore(_migrated_engine(url))


def open_prompt_store(url: str) -> SqlPromptStore:
    """Open the prompt store at a database URL, migrated to the newest schema."""
    return SqlPromptStore(_migrated_engine(url))


def open_eval_store(url: str) -> SqlEvalStore:
    """Open datasets, eval runs and review queues at a database URL, migrated."""
    return SqlEvalStore(_migrated_engine(url))


def _migrated_engine(url: str) -> _Engine:
    engine = create_store_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
