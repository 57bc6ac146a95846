"""A connection of its own for point reads of a SQLite file made on the event loop.

The eval runner reads the call cache once per model call, in line on the loop (see
`EvalStore.inline_reads`). Through the engine each read pays for a pool checkout, a
ping, SQLAlchemy's statement execution and the result wrapper: about 45 µs, ten times
the read itself. This reader keeps one plain `sqlite3` connection in autocommit mode
(a SELECT then never holds a read transaction open, so it sees every commit and never
stalls a WAL checkpoint) and runs SQL compiled once.

It is used by one thread at a time: a caller that finds it busy, or a process forked
after it was opened, gets `None` and uses the engine instead. It is closed when the
engine is disposed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 200  # a reader on the loop must not wait long; WAL readers rarely wait


class SqliteReader:
    """Plain `sqlite3` reads of the engine's database file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    @classmethod
    def for_engine(cls, engine: Engine) -> SqliteReader | None:
        """A reader for a file-backed SQLite engine; None for anything else (PostgreSQL,
        in-memory and URI databases, URLs with options), which keep the engine's path."""
        url = engine.url
        database = url.database
        if engine.dialect.name != "sqlite" or url.query:
            return None
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        reader = cls(os.path.abspath(os.path.expanduser(database)))
        sa.event.listen(engine, "engine_disposed", lambda _engine: reader.close())
        return reader

    def fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """The rows of one query, or None when another thread holds the reader."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            conn = self._connection()
            if conn is None:
                return None
            return conn.execute(sql, params).fetchall()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the connection (it is opened again on the next read)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None and self._pid != os.getpid():
            # forked: the parent's connection is not ours to use or close
            self._conn = None
        if self._conn is None:
            if not os.path.exists(self._path):
                return None
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._conn, self._pid = conn, os.getpid()
        return self._conn


def compiled(statement: sa.sql.Select[Any], engine: Engine) -> str:
    """A statement's SQL for `sqlite3`, with positional `?` parameters."""
    return str(statement.compile(dialect=engine.dialect))
