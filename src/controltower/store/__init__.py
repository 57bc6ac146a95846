"""Storage of traces and spans in SQLite or PostgreSQL, and the in-memory fake."""

from __future__ import annotations

from controltower.store.engine import create_store_engine, current_revision, upgrade
from controltower.store.memory import InMemoryStore
from controltower.store.traces import SqlTraceStore

__all__ = [
    "InMemoryStore",
    "SqlTraceStore",
    "create_store_engine",
    "current_revision",
    "open_store",
    "upgrade",
]


def open_store(url: str) -> SqlTraceStore:
    """Open the trace store at a database URL, migrated to the newest schema."""
    engine = create_store_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlTraceStore(engine)
