"""The SQL trace store: batched writes and keyset-paginated reads of traces and spans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from controltower.domain.trace import TraceRecord
from controltower.store.cursor import check_limit, decode_cursor, encode_cursor
from controltower.store.schema import SPAN_JSON_COLUMNS, TRACE_JSON_COLUMNS, build_metadata
from controltower.store.serialize import (
    Row,
    json_dumps,
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
        self._insert_traces = _BulkInsert(self._traces, TRACE_JSON_COLUMNS, engine.dialect.name)
        self._insert_spans = _BulkInsert(self._spans, SPAN_JSON_COLUMNS, engine.dialect.name)

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
            self._insert_traces.run(conn, trace_rows)
            if span_rows:
                self._insert_spans.run(conn, span_rows)

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
    def _row(row: sa.Row[Any], table: sa.Table) -> Row:
        mapping = row._mapping
        return {column.key: mapping[column] for column in table.c}


class _BulkInsert:
    """A multi-row INSERT that skips known ids, bound straight to the driver.

    The trace writer runs it in the gateway's process. One statement per chunk of rows
    (instead of executemany, which steps once per row) lets the driver release the GIL
    once per chunk, not once per row, and skipping SQLAlchemy's per-row bind processing
    cuts the CPU the writer takes from the event loop several times over.
    """

    CHUNK = 128  # rows per statement: 26 columns x 128 stays far below parameter limits

    def __init__(self, table: sa.Table, json_columns: Sequence[str], dialect: str) -> None:
        self.keys = [c.key for c in table.c]
        self._json = [i for i, key in enumerate(self.keys) if key in set(json_columns)]
        names = ", ".join(f'"{c.name}"' for c in table.c)
        mark = "?" if dialect == "sqlite" else "%s"  # sqlite3: qmark; psycopg: format
        self._row_marks = "(" + ", ".join(mark for _ in self.keys) + ")"
        if dialect == "sqlite":
            self._head, self._tail = f"INSERT OR IGNORE INTO {table.name} ({names}) VALUES ", ""
        else:
            self._head = f"INSERT INTO {table.name} ({names}) VALUES "
            self._tail = " ON CONFLICT DO NOTHING"
        self._sql: dict[int, str] = {}

    def run(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Insert rows (dicts in column order, as serialize.py builds them)."""
        start = 0
        while start < len(rows):
            # chunks of power-of-two sizes: at most 8 distinct statements for the driver
            # to prepare and cache, however the batches vary (each one is large)
            size = 1 << (min(len(rows) - start, self.CHUNK).bit_length() - 1)
            chunk = rows[start : start + size]
            conn.exec_driver_sql(self._statement(size), tuple(self._flatten(chunk)))
            start += size

    def _statement(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            sql = self._sql[n] = self._head + ", ".join([self._row_marks] * n) + self._tail
        return sql

    def _flatten(self, rows: Sequence[Row]) -> list[Any]:
        json_indexes = self._json
        flat: list[Any] = []
        for row in rows:
            values = list(row.values())
            for i in json_indexes:
                if values[i] is not None:
                    values[i] = json_dumps(values[i])
            flat.extend(values)
        return flat
