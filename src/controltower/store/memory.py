"""InMemoryStore: the thread-safe fake of the trace store that tests use."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from controltower.domain.score import Score
from controltower.domain.trace import TraceRecord, counted_calls
from controltower.prompts.memory import InMemoryPromptStore
from controltower.prompts.metrics import MetricsWindow, VersionMetrics
from controltower.prompts.store import PromptStore
from controltower.store import memory_query as q
from controltower.store.cursor import check_limit
from controltower.store.memory_evals import InMemoryEvalStore
from controltower.store.memory_keys import InMemoryKeyStore
from controltower.store.merge import (
    apply_totals,
    merge_trace,
    prepare_piece,
    sum_totals,
)
from controltower.store.prompt_metrics import memory_prompt_metrics
from controltower.store.schema import SPAN_JSON_COLUMNS, TRACE_JSON_COLUMNS
from controltower.store.serialize import (
    Row,
    json_dumps,
    json_loads,
    record_to_rows,
    score_row_to_api,
    score_to_row,
    span_row_to_api,
    trace_row_to_api,
)
from controltower.store.spend import spend_rows
from controltower.tracing.query import GroupFilter, TraceFilter
from controltower.tracing.sink import DeadLetter
from controltower.tracing.spend import SpendQuery, group_entries, spend_report


class InMemoryStore:
    """Keeps traces, spans and scores in dicts; answers exactly like SqlTraceStore."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[str, Row] = {}
        self._spans: dict[str, dict[str, Row]] = {}  # trace id → span id → row
        self._scores: dict[str, Row] = {}
        self._prompts: InMemoryPromptStore | None = None
        self._evals: InMemoryEvalStore | None = None
        self._keys: InMemoryKeyStore | None = None
        self._letters: list[DeadLetter] = []
        self._spend: dict[str, Row] = {}  # request id -> spend entry

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Store a batch: whole traces are inserted (known ids skipped), pieces merged."""
        with self._lock:
            for record in records:
                trace_row, span_rows = record_to_rows(record)
                spans = self._spans.setdefault(trace_row["id"], {})
                for span_row in span_rows:
                    spans.setdefault(span_row["id"], _stored(span_row, SPAN_JSON_COLUMNS))
                if not record.partial:
                    self._traces.setdefault(trace_row["id"], _stored(trace_row, TRACE_JSON_COLUMNS))
                    continue
                authoritative = prepare_piece(record, trace_row)
                old = self._traces.get(trace_row["id"])
                stored = None if old is None else _copy(old, TRACE_JSON_COLUMNS)
                merged = merge_trace(stored, trace_row, authoritative)
                apply_totals(merged, _totals(spans.values()))
                self._traces[trace_row["id"]] = _stored(merged, TRACE_JSON_COLUMNS)
            for entry in spend_rows(records):
                self._spend.setdefault(entry["request_id"], entry)

    def spend_report(self, query: SpendQuery) -> dict[str, Any]:
        """Spend of the gateway's calls, grouped and bucketed, like the SQL store's."""
        with self._lock:
            entries = list(self._spend.values())
        return spend_report(query, group_entries(entries, query))

    def write_scores(self, scores: Sequence[Score]) -> None:
        """Store scores; a score id seen before replaces the earlier score."""
        with self._lock:
            for score in scores:
                self._scores[score.id] = score_to_row(score)

    def list_traces(
        self, limit: int = 50, cursor: str | None = None, where: TraceFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of traces, newest first, and the cursor of the next page (None at the end)."""
        check_limit(limit)
        match = q.trace_matcher(where or TraceFilter())
        rows = [_copy(row, TRACE_JSON_COLUMNS) for row in self._all_traces()]
        page, next_cursor = q.page([row for row in rows if match(row)], limit, cursor)
        return [trace_row_to_api(row) for row in page], next_cursor

    def get_trace(self, trace_id: str, span_io: bool = True) -> dict[str, Any] | None:
        """The trace with its spans and scores (spans without input/output unless span_io)."""
        with self._lock:
            row = self._traces.get(trace_id)
            if row is None:
                return None
            spans = list(self._spans.get(trace_id, {}).values())
        spans.sort(key=lambda span: (span["start_us"], span["id"]))
        trace = trace_row_to_api(_copy(row, TRACE_JSON_COLUMNS))
        trace["spans"] = [span_row_to_api(_copy(span, SPAN_JSON_COLUMNS)) for span in spans]
        if not span_io:
            for span in trace["spans"]:
                span["input"] = span["output"] = None
        trace["scores"] = self.list_scores(trace_id=trace_id, limit=1000)
        return trace

    def get_span(self, trace_id: str, span_id: str) -> dict[str, Any] | None:
        """One span in API form, or None."""
        with self._lock:
            span = self._spans.get(trace_id, {}).get(span_id)
        return None if span is None else span_row_to_api(_copy(span, SPAN_JSON_COLUMNS))

    def list_scores(
        self, trace_id: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Scores newest first, of one trace and/or one name."""
        check_limit(limit)
        with self._lock:
            rows = [
                row
                for row in self._scores.values()
                if (trace_id is None or row["trace_id"] == trace_id)
                and (name is None or row["name"] == name)
            ]
        rows.sort(key=lambda row: (-row["created_us"], row["id"]))
        return [score_row_to_api(row) for row in rows[:limit]]

    def scores_of_traces(
        self, trace_ids: Sequence[str], per_trace: int = 5
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest scores of each of several traces, in one read (for a list page)."""
        return {trace_id: self.list_scores(trace_id, limit=per_trace) for trace_id in trace_ids}

    def list_sessions(
        self, limit: int = 50, cursor: str | None = None, where: GroupFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sessions, most recently active first, with their trace count and totals."""
        return self._groups("session_id", where or GroupFilter(), limit, cursor)

    def get_session(self, session_id: str, project: str | None = None) -> dict[str, Any] | None:
        """A session's totals and its traces (oldest first, at most 1,000), or None."""
        rows = self._group_rows("session_id", session_id, project)
        if not rows:
            return None
        summary = q.summarise("session_id", session_id, rows)
        rows.sort(key=lambda row: (row["start_us"], row["id"]))
        summary["traces"] = [trace_row_to_api(row) for row in rows[:1000]]
        return summary

    def list_users(
        self, limit: int = 50, cursor: str | None = None, where: GroupFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Users, most recently active first, with their traces, tokens and cost."""
        return self._groups("user_id", where or GroupFilter(), limit, cursor)

    def get_user(self, user_id: str, project: str | None = None) -> dict[str, Any] | None:
        """One user's totals (traces, sessions, tokens, cost, first and last seen), or None."""
        rows = self._group_rows("user_id", user_id, project)
        return q.summarise("user_id", user_id, rows) if rows else None

    def delete_user_data(self, user_id: str, project: str | None = None) -> dict[str, int]:
        """Delete every trace, span and score of a user, and take the user's id off their
        spend entries (the amounts stay: they were billed); the counts of each."""
        deleted = self._delete(
            lambda row: row["user_id"] == user_id and project in (None, row["project"])
        )
        with self._lock:
            mine = [
                e
                for e in self._spend.values()
                if e["user_id"] == user_id and project in (None, e["project"])
            ]
            for entry in mine:
                entry["user_id"] = None
        deleted["spend"] = len(mine)
        return deleted

    def delete_before(
        self, cutoff_us: int, project: str | None = None, keep_projects: tuple[str, ...] = ()
    ) -> dict[str, int]:
        """Delete traces started before the cutoff (of one project, or of all but some)."""
        return self._delete(
            lambda row: (
                row["start_us"] < cutoff_us
                and project in (None, row["project"])
                and row["project"] not in keep_projects
            )
        )

    def prompt_metrics(
        self, name: str, window: MetricsWindow | None = None
    ) -> dict[int, VersionMetrics]:
        """Per-version metrics of a prompt, by version (only the versions that served)."""
        return memory_prompt_metrics(self, name, window)

    def prompt_store(self) -> PromptStore:
        """The in-memory prompt store beside these traces (the same one on every call)."""
        with self._lock:
            if self._prompts is None:
                self._prompts = InMemoryPromptStore()
            return self._prompts

    def key_store(self) -> InMemoryKeyStore:
        """The in-memory API keys here (the same on every call)."""
        with self._lock:
            if self._keys is None:
                self._keys = InMemoryKeyStore()
            return self._keys

    def eval_store(self) -> InMemoryEvalStore:
        """The in-memory datasets, runs and review queues here (the same on every call)."""
        with self._lock:
            if self._evals is None:
                self._evals = InMemoryEvalStore()
            return self._evals

    def set_aside(self, letter: DeadLetter) -> None:
        """Keep a record the store refused, with its error."""
        with self._lock:
            self._letters.append(letter)

    def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """The records set aside, newest first."""
        with self._lock:
            return self._letters[::-1][:limit]

    def ping(self) -> None:
        """Always reachable."""

    def close(self) -> None:
        """Nothing to release."""

    def forget_after_fork(self) -> None:
        """Nothing is shared with the parent but the lock, which another thread may hold."""
        self._lock = threading.Lock()

    def _all_traces(self) -> list[Row]:
        with self._lock:
            return list(self._traces.values())

    def _group_rows(self, key: str, value: str, project: str | None) -> list[Row]:
        return [
            _copy(row, TRACE_JSON_COLUMNS)
            for row in self._all_traces()
            if row[key] == value and project in (None, row["project"])
        ]

    def _groups(
        self, key: str, where: GroupFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        check_limit(limit)
        match = q.group_matcher(where)
        rows = [row for row in self._all_traces() if row[key] is not None and match(row)]
        return q.group_page(key, rows, limit, cursor)

    def _delete(self, doomed: Callable[[Row], bool]) -> dict[str, int]:
        counts = {"traces": 0, "spans": 0, "scores": 0}
        with self._lock:
            ids = {trace_id for trace_id, row in self._traces.items() if doomed(row)}
            for trace_id in ids:
                del self._traces[trace_id]
                counts["traces"] += 1
                counts["spans"] += len(self._spans.pop(trace_id, {}))
            for score_id in [k for k, row in self._scores.items() if row["trace_id"] in ids]:
                del self._scores[score_id]
                counts["scores"] += 1
        return counts


def _totals(spans: Iterable[Row]) -> Row | None:
    return sum_totals(call.row for call in counted_calls(_CallRow(row) for row in spans))


class _CallRow:
    """A span row seen as a model call (attribute access, as counted_calls reads it)."""

    __slots__ = ("row",)

    def __init__(self, row: Row) -> None:
        self.row = row

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def parent_id(self) -> str | None:
        return self.row["parent_id"]  # type: ignore[no-any-return]

    @property
    def kind(self) -> str:
        return str(self.row["kind"])


def _stored(row: Row, json_columns: Sequence[str]) -> Row:
    # Stored as JSON text, like the SQL store, so later mutation of the caller's objects
    # does not leak in and the values read back have the same types (tuples become lists).
    return {key: json_dumps(value) if key in json_columns else value for key, value in row.items()}


def _copy(row: Row, json_columns: Sequence[str]) -> Row:
    return {key: json_loads(value) if key in json_columns else value for key, value in row.items()}
