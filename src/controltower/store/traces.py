"""The SQL trace store: batched writes, merges of partial traces, and filtered reads."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from controltower.domain.score import Score
from controltower.domain.trace import USAGE_KINDS, Span, TraceRecord, counted_calls
from controltower.errors import APIError, InvalidRequest, StoreUnavailable
from controltower.prompts.metrics import MetricsWindow, VersionMetrics
from controltower.prompts.store import PromptStore
from controltower.store import groups
from controltower.store.bulk import BulkInsert
from controltower.store.cursor import check_limit, decode_cursor, encode_cursor
from controltower.store.filters import group_conditions, trace_conditions
from controltower.store.merge import (
    apply_totals,
    merge_trace,
    prepare_piece,
    span_totals,
    sum_totals,
)
from controltower.store.previews import SCAN_CHARS, preview_from_prefix
from controltower.store.schema import SPAN_JSON_COLUMNS, TRACE_JSON_COLUMNS, store_tables
from controltower.store.serialize import (
    Row,
    record_to_rows,
    score_row_to_api,
    score_to_row,
    span_row_to_api,
    trace_row_to_api,
)
from controltower.store.spend import SqlSpend
from controltower.tracing.query import GroupFilter, TraceFilter
from controltower.tracing.sink import DeadLetter
from controltower.tracing.spend import SpendQuery

if TYPE_CHECKING:
    from controltower.store.eval_runs import SqlEvalStore
    from controltower.store.keys import SqlKeyStore

_IN_CHUNK = 500  # ids per IN (...) list
# transaction-scoped locks on the traces a batch merges into, taken in one order (no deadlock)
_LOCK_TRACES = (
    "SELECT pg_advisory_xact_lock(key) FROM (SELECT DISTINCT hashtextextended(id, 0) AS key "
    "FROM unnest(%s::text[]) AS id) AS keys ORDER BY key"
)
# PEP 249 errors of a store that is down, busy or locked (not of the data it was given):
# SQLAlchemy's wrappers and the drivers' own (COPY on PostgreSQL runs on the raw driver)
_OUTAGE_ERRORS = frozenset({"OperationalError", "InterfaceError", "DisconnectionError"})


def is_outage(exc: BaseException) -> bool:
    """Whether an error of the database says it is unavailable rather than the data bad."""
    return any(cls.__name__ in _OUTAGE_ERRORS for cls in type(exc).__mro__)


_TOTAL_KEYS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cost")
_PAYLOADS = ("input", "output")  # what a list of traces shows only a preview of

log = logging.getLogger("controltower.store")
P = ParamSpec("P")
R = TypeVar("R")


def read_failure(exc: BaseException) -> APIError | None:
    """The API error of a database failure on a read: the store is down or busy (503), or
    it cannot take a value of the request (400); None for anything else (a bug)."""
    if is_outage(exc) or isinstance(exc, sa.exc.TimeoutError):  # TimeoutError: pool full
        log.warning("a read of the store failed: %s", exc)
        return StoreUnavailable(
            "The store is unavailable (the database cannot be reached or is busy); "
            "retry after Retry-After seconds"
        )
    if isinstance(exc, sa.exc.DataError | OverflowError):
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        text = str(cause).strip()
        reason = text.splitlines()[0] if text else type(cause).__name__
        return InvalidRequest(f"The store cannot take a value of this request: {reason}")
    return None


def _reads(method: Callable[P, R]) -> Callable[P, R]:
    """The read method, its database failures raised as API errors (see read_failure)."""

    @functools.wraps(method)
    def read(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (sa.exc.SQLAlchemyError, OverflowError) as exc:
            error = read_failure(exc)
            if error is None:
                raise
            raise error from exc

    return read


class SqlTraceStore:
    """Traces, spans and scores in SQLite or PostgreSQL; returns plain dicts in API form."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        tables = store_tables()
        self._traces = tables["traces"]
        self._spans = tables["spans"]
        self._scores = tables["scores"]
        self._dead_letters = tables["dead_letters"]
        self._insert_traces = BulkInsert(self._traces, TRACE_JSON_COLUMNS, self._dialect)
        self._upsert_traces = BulkInsert(
            self._traces, TRACE_JSON_COLUMNS, self._dialect, upsert=True
        )
        self._insert_spans = BulkInsert(self._spans, SPAN_JSON_COLUMNS, self._dialect)
        self._upsert_scores = BulkInsert(self._scores, (), self._dialect, upsert=True)
        self._spend = SqlSpend(engine)

    @property
    def engine(self) -> Engine:
        """The engine the store runs on."""
        return self._engine

    # -- writes -------------------------------------------------------------------------

    def write(self, records: Sequence[TraceRecord]) -> None:
        """Store a batch in one transaction: whole traces are inserted, pieces merged."""
        if not records:
            return
        whole = [record for record in records if not record.partial]
        pieces = [record for record in records if record.partial]
        try:
            with self._engine.begin() as conn:
                if whole:
                    self._insert_whole(conn, whole)
                if pieces:
                    self._merge_pieces(conn, pieces)
                self._spend.write(conn, records)
        except Exception as exc:
            if is_outage(exc):
                raise StoreUnavailable(f"the trace store is unavailable: {exc}") from exc
            raise

    def set_aside(self, letter: DeadLetter) -> None:
        """Keep a record the store refused, as text with its error."""
        row = {
            "created_us": letter.created_us,
            "trace_id": letter.trace_id,
            "error": letter.error,
            "payload": letter.payload,
        }
        with self._engine.begin() as conn:
            conn.execute(sa.insert(self._dead_letters), row)

    def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """The records set aside, newest first."""
        d = self._dead_letters
        query = sa.select(d.c.trace_id, d.c.error, d.c.payload, d.c.created_us)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(d.c.id.desc()).limit(limit)).all()
        return [DeadLetter(*row) for row in rows]

    def _insert_whole(self, conn: Connection, records: list[TraceRecord]) -> None:
        trace_rows: list[Row] = []
        span_rows: list[Row] = []
        for record in records:
            trace_row, spans = record_to_rows(record)
            trace_rows.append(trace_row)
            span_rows.extend(spans)
        self._insert_traces.run(conn, trace_rows)
        if span_rows:
            self._insert_spans.run(conn, span_rows)

    def _merge_pieces(self, conn: Connection, records: list[TraceRecord]) -> None:
        by_trace: dict[str, list[tuple[Row, bool]]] = {}
        calls: dict[str, dict[str, Span]] = {}  # trace id → span id → span, of this batch
        span_rows: list[Row] = []
        for record in records:
            trace_row, spans = record_to_rows(record)
            authoritative = prepare_piece(record, trace_row)
            by_trace.setdefault(trace_row["id"], []).append((trace_row, authoritative))
            span_rows.extend(spans)
            batch_spans = calls.setdefault(trace_row["id"], {})
            for span in record.spans:
                batch_spans.setdefault(span.id, span)
        ids = list(by_trace)
        stored = self._lock_and_insert_spans(conn, ids, span_rows)
        # a trace seen before needs all its stored spans to total; a new one only this batch's
        totals = self._totals(conn, [trace_id for trace_id in ids if trace_id in stored])
        for trace_id in ids:
            if trace_id not in stored:
                counted = span_totals(counted_calls(calls[trace_id].values()))
                if counted is not None:
                    totals[trace_id] = counted
        known: list[Row] = []
        new: list[Row] = []
        for trace_id, pieces in by_trace.items():
            merged: Row | None = stored.get(trace_id)
            for row, authoritative in pieces:
                merged = merge_trace(merged, row, authoritative)
            assert merged is not None
            apply_totals(merged, totals.get(trace_id))
            (known if trace_id in stored else new).append(merged)
        if known:
            self._upsert_traces.run(conn, known)
        if new:
            self._insert_traces.run_new(conn, new)

    def _lock_and_insert_spans(
        self, conn: Connection, ids: list[str], rows: list[Row]
    ) -> dict[str, Row]:
        """Serialise merges of these traces, add the spans; the stored trace rows."""
        if self._dialect != "postgresql":
            # SQLite: the first write takes the database's write lock for the transaction
            if rows:
                self._insert_spans.run(conn, rows)
            return self._stored_traces(conn, ids)
        # one merge of a trace at a time across writers and replicas: a second one waits,
        # then reads the first one's spans when it recomputes the totals
        conn.exec_driver_sql(_LOCK_TRACES, (sorted(ids),))
        stored = self._stored_traces(conn, ids)
        # under the lock a trace with no row has no stored span: its spans go straight in
        # (each once: a batch may hold a resent piece)
        new = {(r["trace_id"], r["id"]): r for r in rows if r["trace_id"] not in stored}
        known = [r for r in rows if r["trace_id"] in stored]
        if new:
            self._insert_spans.run_new(conn, list(new.values()))
        if known:
            self._insert_spans.run(conn, known)
        return stored

    def _stored_traces(self, conn: Connection, ids: list[str]) -> dict[str, Row]:
        t = self._traces
        found: dict[str, Row] = {}
        for chunk in _chunks(ids):
            query = sa.select(t).where(t.c.id.in_(chunk))
            for row in conn.execute(query):
                found[row.id] = _row(row, t)
        return found

    def _totals(self, conn: Connection, ids: list[str]) -> dict[str, Row]:
        """Token and cost sums of the counted model-call spans of each trace."""
        s = self._spans
        columns = [s.c.trace_id, s.c.id, s.c.parent_id, s.c.kind, *(s.c[k] for k in _TOTAL_KEYS)]
        calls: dict[str, list[Any]] = {}
        for chunk in _chunks(ids):
            query = sa.select(*columns).where(
                s.c.trace_id.in_(chunk), s.c.kind.in_(sorted(USAGE_KINDS))
            )
            for row in conn.execute(query):
                calls.setdefault(row.trace_id, []).append(row)
        totals: dict[str, Row] = {}
        for trace_id, rows in calls.items():
            summed = sum_totals(row._mapping for row in counted_calls(rows))
            if summed is not None:
                totals[trace_id] = summed
        return totals

    def write_scores(self, scores: Sequence[Score]) -> None:
        """Store scores; a score id seen before replaces the earlier score."""
        if scores:
            with self._engine.begin() as conn:
                self._upsert_scores.run(conn, [score_to_row(score) for score in scores])

    # -- reads --------------------------------------------------------------------------

    @_reads
    def list_traces(
        self, limit: int = 50, cursor: str | None = None, where: TraceFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of traces, newest first, and the cursor of the next page (None at the end)."""
        check_limit(limit)
        t = self._traces
        query = self._list_query().order_by(t.c.start_us.desc(), t.c.id.desc()).limit(limit + 1)
        if where is not None:
            query = query.where(*trace_conditions(t, where, self._dialect))
        if cursor is not None:
            start_us, trace_id = decode_cursor(cursor)
            query = query.where(sa.tuple_(t.c.start_us, t.c.id) < sa.tuple_(start_us, trace_id))
        with self._engine.connect() as conn:
            rows = [_list_row(r, t) for r in conn.execute(query)]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["start_us"], rows[-1]["id"])
        return [trace_row_to_api(row) for row in rows], next_cursor

    def _list_query(self) -> sa.Select[Any]:
        """The traces' columns, of input and output only the start of their JSON text."""
        t = self._traces
        cut = [
            sa.func.substr(sa.cast(t.c[key], sa.Text), 1, SCAN_CHARS).label(f"{key}_prefix")
            for key in _PAYLOADS
        ]
        return sa.select(*(c for c in t.c if c.key not in _PAYLOADS), *cut)

    @_reads
    def get_trace(self, trace_id: str, span_io: bool = True) -> dict[str, Any] | None:
        """The trace with its spans ordered by start time and its scores, or None.

        With span_io False the spans come without input and output (null), which keeps
        megabytes of text off an outline of a large trace.
        """
        t, s = self._traces, self._spans
        columns = [
            c if span_io or c.key not in ("input", "output") else sa.null().label(c.key)
            for c in s.c
        ]
        span_query = (
            sa.select(*columns).where(s.c.trace_id == trace_id).order_by(s.c.start_us, s.c.id)
        )
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(t).where(t.c.id == trace_id)).first()
            if found is None:
                return None
            spans = [dict(r._mapping) for r in conn.execute(span_query)]
            scores = self._scores_of(conn, trace_id=trace_id, limit=1000)
        trace = trace_row_to_api(_row(found, t))
        trace["spans"] = [span_row_to_api(row) for row in spans]
        trace["scores"] = scores
        return trace

    @_reads
    def get_span(self, trace_id: str, span_id: str) -> dict[str, Any] | None:
        """One span in API form, or None."""
        s = self._spans
        query = sa.select(s).where(s.c.trace_id == trace_id, s.c.id == span_id)
        with self._engine.connect() as conn:
            found = conn.execute(query).first()
        return None if found is None else span_row_to_api(_row(found, s))

    @_reads
    def list_scores(
        self, trace_id: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Scores newest first, of one trace and/or one name."""
        check_limit(limit)
        with self._engine.connect() as conn:
            return self._scores_of(conn, trace_id=trace_id, name=name, limit=limit)

    @_reads
    def scores_of_traces(
        self, trace_ids: Sequence[str], per_trace: int = 5
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest scores of each of several traces, in one read (for a list page)."""
        c = self._scores
        found: dict[str, list[dict[str, Any]]] = {trace_id: [] for trace_id in trace_ids}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(trace_ids)):
                query = (
                    sa.select(c)
                    .where(c.c.trace_id.in_(chunk))
                    .order_by(c.c.created_us.desc(), c.c.id)
                )
                for row in conn.execute(query):
                    kept = found[row.trace_id]
                    if len(kept) < per_trace:
                        kept.append(score_row_to_api(_row(row, c)))
        return found

    def _scores_of(
        self, conn: Connection, *, trace_id: str | None, limit: int, name: str | None = None
    ) -> list[dict[str, Any]]:
        c = self._scores
        query = sa.select(c).order_by(c.c.created_us.desc(), c.c.id).limit(limit)
        if trace_id is not None:
            query = query.where(c.c.trace_id == trace_id)
        if name is not None:
            query = query.where(c.c.name == name)
        return [score_row_to_api(_row(r, c)) for r in conn.execute(query)]

    @_reads
    def list_sessions(
        self, limit: int = 50, cursor: str | None = None, where: GroupFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sessions, most recently active first, with their trace count and totals."""
        t = self._traces
        conds = group_conditions(t, where or GroupFilter())
        with self._engine.connect() as conn:
            return groups.group_page(conn, t, t.c.session_id, conds, limit, cursor)

    @_reads
    def get_session(self, session_id: str, project: str | None = None) -> dict[str, Any] | None:
        """A session's totals and its traces (oldest first, at most 1,000), or None."""
        t = self._traces
        with self._engine.connect() as conn:
            summary = groups.group_summary(conn, t, t.c.session_id, session_id, project)
            if summary is None:
                return None
            query = sa.select(t).where(t.c.session_id == session_id)
            if project is not None:
                query = query.where(t.c.project == project)
            query = query.order_by(t.c.start_us, t.c.id).limit(1000)
            summary["traces"] = [trace_row_to_api(_row(r, t)) for r in conn.execute(query)]
        return summary

    @_reads
    def list_users(
        self, limit: int = 50, cursor: str | None = None, where: GroupFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Users, most recently active first, with their traces, tokens and cost."""
        t = self._traces
        conds = group_conditions(t, where or GroupFilter())
        with self._engine.connect() as conn:
            return groups.group_page(conn, t, t.c.user_id, conds, limit, cursor)

    @_reads
    def get_user(self, user_id: str, project: str | None = None) -> dict[str, Any] | None:
        """One user's totals (traces, sessions, tokens, cost, first and last seen), or None."""
        t = self._traces
        with self._engine.connect() as conn:
            return groups.group_summary(conn, t, t.c.user_id, user_id, project)

    # -- deletion -----------------------------------------------------------------------

    @_reads
    def delete_user_data(self, user_id: str, project: str | None = None) -> dict[str, int]:
        """Delete every trace, span and score of a user, and take the user's id off their
        spend entries (the amounts stay: they were billed); the counts of each."""
        t = self._traces
        conds = [t.c.user_id == user_id]
        if project is not None:
            conds.append(t.c.project == project)
        deleted = self._delete_traces(conds)
        with self._engine.begin() as conn:
            deleted["spend"] = self._spend.forget_user(conn, user_id, project)
        return deleted

    def delete_before(
        self, cutoff_us: int, project: str | None = None, keep_projects: tuple[str, ...] = ()
    ) -> dict[str, int]:
        """Delete traces started before the cutoff (of one project, or of all but some)."""
        t = self._traces
        conds = [t.c.start_us < cutoff_us]
        if project is not None:
            conds.append(t.c.project == project)
        if keep_projects:
            conds.append(t.c.project.not_in(keep_projects))
        return self._delete_traces(conds)

    def _delete_traces(self, conds: list[Any]) -> dict[str, int]:
        t, s, c = self._traces, self._spans, self._scores
        ids = sa.select(t.c.id).where(*conds).scalar_subquery()
        with self._engine.begin() as conn:
            scores = conn.execute(sa.delete(c).where(c.c.trace_id.in_(ids))).rowcount
            spans = conn.execute(sa.delete(s).where(s.c.trace_id.in_(ids))).rowcount
            traces = conn.execute(sa.delete(t).where(*conds)).rowcount
        return {"traces": traces, "spans": spans, "scores": scores}

    @_reads
    def spend_report(self, query: SpendQuery) -> dict[str, Any]:
        """Spend of the gateway's calls, grouped and bucketed (see tracing/spend.py)."""
        return self._spend.report(query)

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's pooled connections without closing them."""
        self._engine.dispose(close=False)

    @_reads
    def prompt_metrics(
        self, name: str, window: MetricsWindow | None = None
    ) -> dict[int, VersionMetrics]:
        """Per-version metrics of a prompt, by version (only the versions that served)."""
        from controltower.store.prompt_metrics import sql_prompt_metrics

        return sql_prompt_metrics(self._engine, name, window)

    def prompt_store(self) -> PromptStore:
        """A prompt store on the same database (and engine) as these traces."""
        from controltower.store.prompts import SqlPromptStore

        return SqlPromptStore(self._engine)

    def key_store(self) -> SqlKeyStore:
        """API keys on the same database (and engine)."""
        from controltower.store.keys import SqlKeyStore

        return SqlKeyStore(self._engine)

    def eval_store(self) -> SqlEvalStore:
        """Datasets, eval runs and review queues on the same database (and engine)."""
        from controltower.store.eval_runs import SqlEvalStore

        return SqlEvalStore(self._engine)


def _row(row: sa.Row[Any], table: sa.Table) -> Row:
    mapping = row._mapping
    return {column.key: mapping[column] for column in table.c}


def _list_row(row: sa.Row[Any], table: sa.Table) -> Row:
    mapping = row._mapping
    found = {column.key: mapping[column] for column in table.c if column.key not in _PAYLOADS}
    for key in _PAYLOADS:
        found[key] = preview_from_prefix(mapping[f"{key}_prefix"])
    return found


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]
