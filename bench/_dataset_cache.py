"""Build the query benchmark's dataset once per database and reuse it while it is intact.

SQLite: a file under the data directory. PostgreSQL: a dedicated schema (the URL's
search_path points at it). Next to each sits a manifest (JSON) with what the queries need:
the ids of the big trace, of a heavy and a typical user, of a session, a cursor deep in
the list, cost and latency thresholds, and how long loading took.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from _dataset import COMMON_WORD, DAY_US, RARE_WORD, Plan, Stats, generate

from controltower.store import create_store_engine, open_store
from controltower.store.cursor import encode_cursor
from controltower.store.engine import HEAD_REVISION

DATASET_VERSION = 1
BATCH_TRACES = 2000  # ~20,000 spans per store.write (one transaction)


def sqlite_url(data_dir: Path, plan: Plan) -> str:
    """The dataset's SQLite URL."""
    return f"sqlite:///{data_dir / f'query-bench-{plan.label}.db'}"


def postgres_url(server_url: str, plan: Plan) -> str:
    """The dataset's PostgreSQL URL: the server's, with search_path set to its schema."""
    separator = "&" if "?" in server_url else "?"
    options = quote(f"-csearch_path={schema_name(plan)}", safe="")
    return f"{server_url}{separator}options={options}"


def schema_name(plan: Plan) -> str:
    """The dedicated PostgreSQL schema of a dataset size."""
    return "bench_query" if plan.traces >= 100_000 else f"bench_query_{plan.label}"


def manifest_path(data_dir: Path, db: str, plan: Plan) -> Path:
    """Where the manifest of a database's dataset is kept."""
    return data_dir / f"query-bench-{db}-{plan.label}.json"


def ensure(
    db: str, url: str, plan: Plan, data_dir: Path, server_url: str | None, rebuild: bool
) -> dict[str, Any]:
    """The dataset's manifest; builds the dataset when it is missing, stale or asked to."""
    path = manifest_path(data_dir, db, plan)
    if not rebuild and path.exists():
        manifest: dict[str, Any] = json.loads(path.read_text())
        if _reusable(manifest, url, plan):
            print(f"  {db}: reusing the dataset ({manifest['spans']:,} spans)", flush=True)
            return manifest
    _drop(db, url, plan, server_url)
    manifest = build(url, plan)
    manifest["db"] = db
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _reusable(manifest: dict[str, Any], url: str, plan: Plan) -> bool:
    if manifest.get("version") != DATASET_VERSION or manifest.get("plan") != asdict(plan):
        return False
    try:
        engine = create_store_engine(url)
        with engine.connect() as conn:
            traces = conn.exec_driver_sql("SELECT count(*) FROM traces").scalar()
            big = conn.execute(
                sa.text("SELECT count(*) FROM spans WHERE trace_id = :id"),
                {"id": manifest["big_trace_id"]},
            ).scalar()
        engine.dispose()
    except sa.exc.SQLAlchemyError:
        return False
    return bool(traces == manifest["traces"] and big == plan.big_spans)


def _drop(db: str, url: str, plan: Plan, server_url: str | None) -> None:
    if db == "sqlite":
        database = sa.engine.make_url(url).database or ""
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
        return
    import psycopg

    assert server_url is not None
    schema = schema_name(plan)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


def build(url: str, plan: Plan) -> dict[str, Any]:
    """Generate the dataset into a fresh store through store.write; the manifest."""
    end_us = (int(time.time()) // 60) * 60 * 1_000_000
    store = open_store(url)
    stats = Stats()
    began = time.perf_counter()
    write_s = 0.0
    try:
        for batch, scores in generate(plan, end_us, BATCH_TRACES, stats):
            t = time.perf_counter()
            store.write(batch)
            store.write_scores(scores)
            write_s += time.perf_counter() - t
            stats.scores += len(scores)
            _progress(stats, plan, began)
        load_s = time.perf_counter() - began
        finish_s = _finish(store.engine)
    finally:
        store.close()
    print(
        f"  loaded {stats.spans:,} spans in {load_s:.0f} s "
        f"({stats.spans / load_s:,.0f} spans/s; {write_s:.0f} s in store.write), "
        f"then {finish_s:.0f} s of ANALYZE/checkpoint",
        flush=True,
    )
    return _manifest(plan, stats, end_us, load_s, write_s, finish_s)


def _progress(stats: Stats, plan: Plan, began: float) -> None:
    if stats.traces % 20_000 < BATCH_TRACES:
        elapsed = time.perf_counter() - began
        print(
            f"    {stats.traces:,}/{plan.traces:,} traces, {stats.spans:,} spans, {elapsed:.0f} s",
            flush=True,
        )


def _finish(engine: sa.Engine) -> float:
    """Leave the database as a long-running one would be: statistics gathered, WAL folded.

    PostgreSQL's autovacuum would ANALYZE the fresh tables within a minute; doing it now
    keeps the first measurements from seeing plans made without statistics. SQLite gets no
    ANALYZE: the store never runs one, so a real database has no sqlite_stat1 either.
    """
    began = time.perf_counter()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - began


def _manifest(
    plan: Plan, stats: Stats, end_us: int, load_s: float, write_s: float, finish_s: float
) -> dict[str, Any]:
    stats.starts.sort(reverse=True)
    deep_start, deep_id = stats.starts[len(stats.starts) // 2]
    users = stats.user_traces.most_common()
    typical_user = users[len(users) // 2][0]
    session, session_user = next(iter(stats.sessions.items()))
    costs = sorted(stats.costs)
    latencies = sorted(stats.latencies_ms)
    return {
        "version": DATASET_VERSION,
        "schema_revision": HEAD_REVISION,
        "plan": asdict(plan),
        "traces": stats.traces,
        "spans": stats.spans,
        "scores": stats.scores,
        "errors": stats.errors,
        "end_us": end_us,
        "first_us": end_us - plan.days * DAY_US,
        "big_trace_id": stats.big_trace_id,
        "typical_trace_id": stats.typical_trace_id,
        "heavy_user": users[0][0],
        "heavy_user_traces": users[0][1],
        "typical_user": typical_user,
        "typical_user_traces": stats.user_traces[typical_user],
        "users": len(users),
        "session_id": session,
        "session_user": session_user,
        "deep_cursor": encode_cursor(deep_start, deep_id),
        "deep_rank": len(stats.starts) // 2,
        "common_word": COMMON_WORD,
        "rare_word": RARE_WORD,
        "cost_p99": round(costs[int(len(costs) * 0.99)], 6),
        "cost_median": round(statistics.median(costs), 6),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)]),
        "load_s": round(load_s, 1),
        "write_s": round(write_s, 1),
        "finish_s": round(finish_s, 1),
        "spans_per_s": round(stats.spans / load_s),
    }
