"""InMemoryStore: the thread-safe fake of the trace store that tests use."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from controltower.domain.trace import TraceRecord
from controltower.store.cursor import check_limit, decode_cursor, encode_cursor
from controltower.store.schema import SPAN_JSON_COLUMNS, TRACE_JSON_COLUMNS
from controltower.store.serialize import (
    Row,
    json_dumps,
    json_loads,
    record_to_rows,
    span_row_to_api,
    trace_row_to_api,
)


class InMemoryStore:
    """Keeps traces and spans in dicts; answers exactly like SqlTraceStore."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[str, Row] = {}
        self._spans: dict[tuple[str, str], Row] = {}

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Store a batch of traces and spans; known ids are skipped."""
        rows = [record_to_rows(record) for record in records]
        with self._lock:
            for trace_row, span_rows in rows:
                self._traces.setdefault(trace_row["id"], _stored(trace_row, TRACE_JSON_COLUMNS))
                for span_row in span_rows:
                    key = (span_row["trace_id"], span_row["id"])
                    self._spans.setdefault(key, _stored(span_row, SPAN_JSON_COLUMNS))

    def list_traces(
        self, limit: int = 50, cursor: str | None = None, project: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of traces, newest first, and the cursor of the next page (None at the end)."""
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        with self._lock:
            rows = [
                row
                for row in self._traces.values()
                if (project is None or row["project"] == project)
                and (after is None or (row["start_us"], row["id"]) < after)
            ]
        rows.sort(key=lambda row: (row["start_us"], row["id"]), reverse=True)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["start_us"], rows[-1]["id"])
        return [trace_row_to_api(_copy(row, TRACE_JSON_COLUMNS)) for row in rows], next_cursor

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with its spans ordered by start time, or None when it is unknown."""
        with self._lock:
            row = self._traces.get(trace_id)
            if row is None:
                return None
            spans = [span for key, span in self._spans.items() if key[0] == trace_id]
        spans.sort(key=lambda span: (span["start_us"], span["id"]))
        trace = trace_row_to_api(_copy(row, TRACE_JSON_COLUMNS))
        trace["spans"] = [span_row_to_api(_copy(span, SPAN_JSON_COLUMNS)) for span in spans]
        return trace

    def ping(self) -> None:
        """Always reachable."""

    def close(self) -> None:
        """Nothing to release."""


def _stored(row: Row, json_columns: Sequence[str]) -> Row:
    # Stored as JSON text, like the SQL store, so later mutation of the caller's objects
    # does not leak in and the values read back have the same types (tuples become lists).
    return {key: json_dumps(value) if key in json_columns else value for key, value in row.items()}


def _copy(row: Row, json_columns: Sequence[str]) -> Row:
    return {key: json_loads(value) if key in json_columns else value for key, value in row.items()}
