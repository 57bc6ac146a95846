"""The SQL eval store: runs with their gate records, results by item and repeat, the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from controltower.domain.evaluation import EvalResult, EvalRun, RunStatus, Verdict
from controltower.domain.ids import now_us
from controltower.errors import NotFound
from controltower.store.datasets import SqlDatasetStore
from controltower.store.reviews import SqlReviewStore
from controltower.store.schema import store_tables
from controltower.store.serialize import json_loads
from controltower.store.sqlite_reader import SqliteReader, compiled

_CHUNK = 500
MAX_RUNS = 1000


class SqlEvalStore(SqlDatasetStore, SqlReviewStore):
    """The EvalStore (datasets and review queues included) on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        SqlReviewStore.__init__(self, engine)
        tables = store_tables()
        self._runs = tables["eval_runs"]
        self._results = tables["eval_results"]
        self._cache = tables["eval_cache"]
        self.inline_reads = engine.dialect.name == "sqlite"
        cache = self._cache
        self._one_key = sa.select(cache.c.key, cache.c.value).where(
            cache.c.key == sa.bindparam("key")
        )
        # the runner's reads of a SQLite file skip the engine (see sqlite_reader)
        self._reader = SqliteReader.for_engine(engine)
        self._one_key_sql = compiled(self._one_key, engine) if self._reader else ""

    def create_run(self, run: EvalRun) -> None:
        """Store a new run (its record, parameters and fingerprint)."""
        with self._engine.begin() as conn:
            conn.execute(sa.insert(self._runs).values(_run_row(run)))

    def finish_run(self, run_id: str, status: RunStatus, summary: dict[str, Any]) -> None:
        """Set a run's status and summary (and its end time unless it is running again)."""
        r = self._runs
        finished = None if status == "running" else now_us()
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(r)
                .where(r.c.id == run_id)
                .values(status=status, summary=summary, finished_us=finished)
            )
            if done.rowcount == 0:
                raise _no_run(run_id)

    def get_run(self, run_id: str) -> EvalRun:
        """One run; NotFound if there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(self._runs).where(self._runs.c.id == run_id)).first()
        if row is None:
            raise _no_run(run_id)
        return _run_of(row)

    def list_runs(
        self,
        *,
        name: str | None = None,
        branch: str | None = None,
        status: RunStatus | None = None,
        before: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> list[EvalRun]:
        """Runs, newest first (of one eval, of one branch, in one status); `before` is a
        (created_us, id) cursor: only the runs older than that one (the next page)."""
        r = self._runs
        query = sa.select(r).order_by(r.c.created_us.desc(), r.c.id.desc())
        if name is not None:
            query = query.where(r.c.name == name)
        if branch is not None:
            query = query.where(r.c.branch == branch)
        if status is not None:
            query = query.where(r.c.status == status)
        if before is not None:
            at_us, run_id = before
            query = query.where(
                sa.or_(r.c.created_us < at_us, sa.and_(r.c.created_us == at_us, r.c.id < run_id))
            )
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(max(1, min(limit, MAX_RUNS))))
            return [_run_of(row) for row in rows]

    def write_results(self, results: Sequence[EvalResult]) -> None:
        """Store results; one that exists (same run, item and repeat) is replaced."""
        if not results:
            return
        t = self._results
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        rows = [_result_row(result) for result in results]
        keys = [t.c.run_id, t.c.item_id, t.c.repeat]
        with self._engine.begin() as conn:
            for start in range(0, len(rows), _CHUNK):
                insert = dialect.insert(t)
                changed = {c.name: insert.excluded[c.name] for c in t.columns if c not in keys}
                upsert = insert.on_conflict_do_update(index_elements=keys, set_=changed)
                conn.execute(upsert, rows[start : start + _CHUNK])

    def run_results(self, run_id: str) -> list[EvalResult]:
        """A run's results, by item and repeat."""
        t = self._results
        query = sa.select(t).where(t.c.run_id == run_id).order_by(t.c.item_id, t.c.repeat)
        with self._engine.connect() as conn:
            return [_result_of(row) for row in conn.execute(query)]

    def run_result(self, run_id: str, item_id: str, repeat: int) -> EvalResult | None:
        """One result of a run (an item's repeat), or None when it has none."""
        t = self._results
        query = sa.select(t).where(
            t.c.run_id == run_id, t.c.item_id == item_id, t.c.repeat == repeat
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _result_of(row)

    def cache_get(self, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values of those keys that have one."""
        if self._reader is not None:
            read = self._read_keys(keys)
            if read is not None:
                return read
        c, found = self._cache, {}
        with self._engine.connect() as conn:
            if len(keys) == 1:  # the runner's usual read: one statement, compiled once
                row = conn.execute(self._one_key, {"key": keys[0]}).first()
                return {} if row is None else {row.key: row.value}
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                query = sa.select(c.c.key, c.c.value).where(c.c.key.in_(chunk))
                found.update({row.key: row.value for row in conn.execute(query)})
        return found

    def _read_keys(self, keys: Sequence[str]) -> dict[str, Any] | None:
        """The keys' values through the plain reader; None when it is busy elsewhere."""
        found: dict[str, Any] = {}
        for key in keys:
            rows = self._reader.fetch(self._one_key_sql, (key,)) if self._reader else None
            if rows is None:
                return None
            if rows:
                found[key] = json_loads(rows[0][1])
        return found

    def cache_put(self, entries: dict[str, Any]) -> None:
        """Cache values by key (a key that exists keeps its first value)."""
        if not entries:
            return
        c, at_us = self._cache, now_us()
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        rows = [{"key": k, "value": v, "created_us": at_us} for k, v in entries.items()]
        with self._engine.begin() as conn:
            for start in range(0, len(rows), _CHUNK):
                insert = dialect.insert(c).on_conflict_do_nothing(index_elements=[c.c.key])
                conn.execute(insert, rows[start : start + _CHUNK])


def _run_row(run: EvalRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "project": run.project,
        "name": run.name,
        "status": run.status,
        "fingerprint": run.fingerprint,
        "created_us": run.created_us,
        "finished_us": run.finished_us,
        "batch": run.batch,
        "branch": run.branch,
        "commit": run.commit,
        "record": run.record,
        "params": run.params,
        "summary": run.summary,
    }


def _run_of(row: Any) -> EvalRun:
    return EvalRun(
        id=row.id,
        name=row.name,
        created_us=row.created_us,
        fingerprint=row.fingerprint,
        status=row.status,
        record=dict(row.record or {}),
        params=dict(row.params or {}),
        summary=dict(row.summary or {}),
        finished_us=row.finished_us,
        project=row.project,
        batch=row.batch,
        branch=row.branch,
        commit=row.commit,
    )


def _result_row(result: EvalResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "item_id": result.item_id,
        "repeat": result.repeat,
        "status": result.status,
        "output": result.output,
        "text": result.text,
        "error": result.error,
        "trace_id": result.trace_id,
        "latency_ms": result.latency_ms,
        "cost_usd": result.cost_usd,
        "scores": {name: verdict.as_json() for name, verdict in result.scores.items()},
        "created_us": result.created_us or now_us(),
    }


def _result_of(row: Any) -> EvalResult:
    return EvalResult(
        run_id=row.run_id,
        item_id=row.item_id,
        repeat=row.repeat,
        status=row.status,
        output=row.output,
        text=row.text,
        error=row.error,
        trace_id=row.trace_id,
        latency_ms=row.latency_ms,
        cost_usd=row.cost_usd,
        scores={name: Verdict.from_json(v) for name, v in (row.scores or {}).items()},
        created_us=row.created_us,
    )


def _no_run(run_id: str) -> NotFound:
    return NotFound(f"no eval run {run_id!r}", param="run")
