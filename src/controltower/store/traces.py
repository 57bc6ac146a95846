"""The SQL trace store: batched writes and keyset-paginated reads of traces and spans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Insert

from controltower.domain.trace import TraceRecord
from controltower.store.cursor import check_limit, decode_cursor, encode_cursor
from controltower.store.schema import build_metadata
from controltower.store.serialize import (
    Row,
    record_to_rows,
    span_row_to_api,
    trace_row_to_api,
)


class SqlTraceStore:
    """Traces and spans in SQLite or PostgreSQL; returns plain dicts in API form."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata = build_metadata()
        self._traces = metadata.tables["traces"]
        self._spans = metadata.tables["spans"]

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._engine

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Insert a batch of traces and spans in one transaction; known ids are skipped."""
        if not records:
            return
        trace_rows: list[Row] = []
        span_rows: list[Row] = []
        for record in records:
            trace_row, spans = record_to_rows(record)
            trace_rows.append(trace_row)
            span_rows.extend(spans)
        with self._engine.begin() as conn:
            conn.execute(self._insert_ignore(conn, self._traces), trace_rows)
            if span_rows:
                conn.execute(self._insert_ignore(conn, self._spans), span_rows)

    def list_traces(
        self, limit: int = 50, cursor: str | None = None, project: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of traces, newest first, and the cursor of the next page (None at the end)."""
        check_limit(limit)
        t = self._traces
        query = sa.select(t).order_by(t.c.start_us.desc(), t.c.id.desc()).limit(limit + 1)
        if project is not None:
            query = query.where(t.c.project == project)
        if cursor is not None:
            start_us, trace_id = decode_cursor(cursor)
            query = query.where(sa.tuple_(t.c.start_us, t.c.id) < sa.tuple_(start_us, trace_id))
        with self._engine.connect() as conn:
            rows = [self._row(r, t) for r in conn.execute(query)]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["start_us"], rows[-1]["id"])
        return [trace_row_to_api(row) for row in rows], next_cursor

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with its spans ordered by start time, or None when it is unknown."""
        t, s = self._traces, self._spans
        span_query = sa.select(s).where(s.c.trace_id == trace_id).order_by(s.c.start_us, s.c.id)
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(t).where(t.c.id == trace_id)).first()
            if found is None:
                return None
            spans = [self._row(r, s) for r in conn.execute(span_query)]
        trace = trace_row_to_api(self._row(found, t))
        trace["spans"] = [span_row_to_api(row) for row in spans]
        return trace

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    @staticmethod
    def _insert_ignore(conn: Connection, table: sa.Table) -> Insert:
        # Ignoring known ids makes a retried or replayed batch harmless.
        name = conn.dialect.name
        if name == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        if name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return table.insert()

    @staticmethod
    def _row(row: sa.Row[Any], table: sa.Table) -> Row:
        mapping = row._mapping
        return {column.key: mapping[column] for column in table.c}
