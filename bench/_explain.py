"""Why a request is slow: the store calls behind it, timed in process, with their plans.

The SQL is captured from the store's own engine while it answers (so the plans are of the
statements the server runs, with their parameters), then explained on the same database:
EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _queries import Query, store_call

from controltower.domain import now_us
from controltower.store import SqlTraceStore, create_store_engine

STORE_REPS = 5


def store_times(url: str, queries: list[Query]) -> dict[str, float]:
    """Median ms of each request's store calls made in this process (no HTTP, no encoding)."""
    store = SqlTraceStore(create_store_engine(url))
    try:
        return {query.key: _median_ms(store_call(query, store, now_us())) for query in queries}
    finally:
        store.close()


def _median_ms(call: Callable[[], Any]) -> float:
    call()  # warm
    times = []
    for _ in range(STORE_REPS):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def explain_all(url: str, queries: list[Query], times: dict[str, float]) -> list[dict[str, Any]]:
    """For each query: the time of its store calls and the plan of each SELECT they run."""
    if not queries:
        return []
    store = SqlTraceStore(create_store_engine(url))
    try:
        return [_explain(store, query, times.get(query.key)) for query in queries]
    finally:
        store.close()


def _explain(store: SqlTraceStore, query: Query, store_ms: float | None) -> dict[str, Any]:
    call = store_call(query, store, now_us())
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    statements = _distinct_selects(captured)
    with store.engine.connect() as conn:
        plans = [_plan(conn, sql, params) for sql, params in statements]
    return {
        "key": query.key,
        "store_ms": store_ms,
        "statements": len(captured),
        "plans": [
            {"sql": sql, "params": _printable(params), "plan": plan}
            for (sql, params), plan in zip(statements, plans, strict=True)
        ],
    }


def _distinct_selects(captured: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    # a web page may run the same statement once per listed trace: explain it once
    seen: set[str] = set()
    out = []
    for sql, params in captured:
        if sql.lstrip().upper().startswith("SELECT") and sql not in seen:
            seen.add(sql)
            out.append((sql, params))
    return out


def _plan(conn: sa.Connection, sql: str, params: Any) -> list[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[node] - 1) + str(detail))
        return lines
    rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).all()
    return [str(row[0]) for row in rows]


def _printable(params: Any) -> Any:
    def short(value: Any) -> Any:
        return value[:60] + "…" if isinstance(value, str) and len(value) > 60 else value

    if isinstance(params, dict):
        return {key: short(value) for key, value in params.items()}
    if isinstance(params, list | tuple):
        return [short(value) for value in params]
    return params


def database_version(url: str) -> str:
    """`SQLite 3.x` or `PostgreSQL 15.x`."""
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                return "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())
            version = str(conn.exec_driver_sql("SHOW server_version").scalar())
            return "PostgreSQL " + version.split()[0]
    finally:
        engine.dispose()


def size_mib(url: str) -> float:
    """The size of the dataset on disk (SQLite file and WAL; PostgreSQL tables + indexes)."""
    engine = create_store_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            database = Path(engine.url.database or "")
            files = [database, Path(f"{database}-wal")]
            return round(sum(f.stat().st_size for f in files if f.exists()) / 2**20, 1)
        with engine.connect() as conn:
            total = conn.exec_driver_sql(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            ).scalar()
        return round(float(total or 0) / 2**20, 1)
    finally:
        engine.dispose()


def render_plans(runs: list[dict[str, Any]]) -> str:
    """Every captured statement with its plan, as text for bench/results/."""
    lines: list[str] = []
    for run in runs:
        for entry in run["plans"]:
            lines.append(
                f"===== {run['db']} {entry['key']}: store calls {entry['store_ms']} ms "
                f"in process, {entry['statements']} statements"
            )
            for item in entry["plans"]:
                lines += ["--- SQL", item["sql"], f"--- params {item['params']}", "--- plan"]
                lines += item["plan"]
            lines.append("")
    return "\n".join(lines)
