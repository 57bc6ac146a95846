"""Query benchmark: trace list, filters, sessions, users and big-trace detail over 1M spans.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/query_bench.py                  # 1M spans, SQLite and PostgreSQL
    .venv/bin/python bench/query_bench.py --quick          # 100k spans, fewer repetitions
    .venv/bin/python bench/query_bench.py --db sqlite      # one database only
    .venv/bin/python bench/query_bench.py --rebuild        # regenerate the cached datasets

What it does: builds the dataset once per database through the store's fast path
(``open_store(url).write(records)``, whole records in batches of 2,000 traces) and keeps it
(SQLite under ``--data-dir``, PostgreSQL in the schema ``bench_query``) for the next runs;
applies pending migrations (timed; PostgreSQL then gets a VACUUM ANALYZE); starts
``controltower serve`` on a free port of 127.0.0.1 against it; times every request of
``bench/_queries.py`` with one keep-alive httpx client at concurrency 1 (warm-ups, then
rounds that send each request once; p50 and p95 of the round trip); times the same store
calls in this process (no HTTP); for each request over its target, captures their SQL and
records EXPLAIN QUERY PLAN (SQLite) or EXPLAIN (ANALYZE, BUFFERS) (PostgreSQL).
The whole run takes ~3 minutes with cached datasets (building them: ~1.5 min SQLite,
~5 min PostgreSQL); --quick takes ~1 minute.
Full runs replace the section between the query-bench markers of docs/benchmarks.md
(--quick and --only runs do not); raw samples and plans go to bench/results/. The
server is ended by its PID in a ``finally``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _dataset_cache
import _explain
import _procs
import _queries
import _query_report
import _report
import httpx
from _dataset import Plan
from _env import DOC, RESULTS_DIR, ROOT, machine
from _procs import Proc

from controltower.store import current_revision, open_store

DEFAULT_DATA_DIR = Path("/tmp/controltower-query-bench")
POSTGRES_URL = os.environ.get(
    "CONTROLTOWER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
QUERY_BUDGET_S = 60.0  # a request stops repeating after this long (reported as n)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="controltower query benchmark")
    parser.add_argument("--quick", action="store_true", help="100k spans, 10 repetitions")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--reps", type=int, help="timed repetitions per request (30)")
    parser.add_argument("--warmups", type=int, help="untimed requests before them (3)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--rebuild", action="store_true", help="regenerate the datasets")
    parser.add_argument("--explain-all", action="store_true", help="plans of every request")
    parser.add_argument("--only", help="comma-separated query keys (e.g. f.q_rare,d.big)")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    return parser.parse_args(argv)


# --- the server --------------------------------------------------------------------------


def start_server(url: str, workdir: Path, db: str) -> tuple[Proc, str]:
    """`controltower serve` on a free loopback port over the dataset's database."""
    return _procs.serve_controltower(url, workdir, db, ready_s=300)


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _rows(response: httpx.Response) -> int | None:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    body = response.json()
    if "data" in body:
        return len(body["data"])
    if "spans" in body:
        return len(body["spans"])
    if "traces" in body:
        return len(body["traces"])
    count = body.get("trace_count")
    return count if isinstance(count, int) else None


@dataclass
class Timing:
    """The samples of one request so far, and its last response."""

    query: _queries.Query
    samples: list[float] = field(default_factory=list)
    spent_s: float = 0.0
    response: httpx.Response | None = None

    def call(self, client: httpx.Client) -> float:
        """Send the request once; its round trip in ms."""
        t = time.perf_counter()
        self.response = client.get(self.query.path, params=self.query.params)
        elapsed = time.perf_counter() - t
        self.spent_s += elapsed
        return elapsed * 1000

    @property
    def done(self) -> bool:
        """A failed request or one over its time budget is not repeated."""
        failed = self.response is not None and self.response.status_code != 200
        return failed or self.spent_s > QUERY_BUDGET_S


def summarize(timing: Timing) -> dict[str, Any]:
    """p50, p95, status, rows and size of one request."""
    query, samples, response = timing.query, timing.samples, timing.response
    assert response is not None
    p95 = percentile(samples, 0.95) if samples else float("inf")
    ok = response.status_code == 200
    return {
        "key": query.key,
        "status": response.status_code,
        "rows": _rows(response) if ok else None,
        "bytes": len(response.content),
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 2) if samples else None,
        "p95_ms": round(p95, 2),
        "max_ms": round(max(samples), 2) if samples else None,
        "target_ms": query.target_ms,
        "ok": ok and p95 <= query.target_ms,
        "samples_ms": [round(s, 3) for s in samples],
    }


def measure(
    base: str, queries: list[_queries.Query], reps: int, warmups: int
) -> list[dict[str, Any]]:
    """Warm-ups, then rounds that send every request once, on one keep-alive connection.

    Rounds (rather than all repetitions of one request in a row) spread a burst of noise
    from other processes over every request instead of spoiling one request's p95.
    """
    timings = [Timing(query) for query in queries]
    with httpx.Client(base_url=base, timeout=120.0, trust_env=False) as client:
        for timing in timings:
            for _ in range(max(1, warmups)):
                timing.call(client)
            timing.spent_s = 0.0
        for _ in range(reps):
            for timing in timings:
                if not timing.done:
                    timing.samples.append(timing.call(client))
    results = [summarize(timing) for timing in timings]
    for result in results:
        verdict = "ok  " if result["ok"] else "MISS"
        print(
            f"  {verdict} {result['key']:<18} p50 {result['p50_ms']:>8.1f}  p95 "
            f"{result['p95_ms']:>8.1f} ms  rows {result['rows']}  "
            f"{result['bytes'] / 1024:,.0f} KiB  (status {result['status']})",
            flush=True,
        )
    return results


# --- one database ------------------------------------------------------------------------


def dataset_url(db: str, args: argparse.Namespace, plan: Plan) -> str:
    """The URL of the database that holds (or will hold) the dataset."""
    if db == "sqlite":
        return _dataset_cache.sqlite_url(Path(args.data_dir), plan)
    return _dataset_cache.postgres_url(str(args.postgres_url), plan)


def migrate(url: str, manifest: dict[str, Any], manifest_file: Path) -> float:
    """Apply pending migrations (e.g. new indexes) before the server starts; seconds.

    After a migration PostgreSQL gets a VACUUM ANALYZE, as autovacuum would give it in a
    while: statistics of new expression indexes exist only after an ANALYZE, and
    index-only scans need the visibility map. The manifest remembers the revision.
    """
    began = time.perf_counter()
    store = open_store(url)
    try:
        revision = current_revision(store.engine)
        if revision != manifest.get("schema_revision"):
            if store.engine.dialect.name == "postgresql":
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            manifest["schema_revision"] = revision
            manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    finally:
        store.close()
    return round(time.perf_counter() - began, 2)


def run_db(
    db: str, args: argparse.Namespace, plan: Plan, workdir: Path, procs: list[Proc]
) -> dict[str, Any]:
    """Dataset, server, timings and plans of one database."""
    print(f"== {db}", flush=True)
    url = dataset_url(db, args, plan)
    server_url = args.postgres_url if db == "postgres" else None
    manifest = _dataset_cache.ensure(db, url, plan, args.data_dir, server_url, args.rebuild)
    migrate_s = migrate(url, manifest, _dataset_cache.manifest_path(args.data_dir, db, plan))
    queries = _queries.build(manifest)
    if args.only:
        wanted = set(args.only.split(","))
        queries = [q for q in queries if q.key in wanted]
    proc, base = start_server(url, workdir, db)
    procs.append(proc)
    load_before = round(os.getloadavg()[0], 2)
    try:
        results = measure(base, queries, args.reps, args.warmups)
    finally:
        _procs.stop(proc)
    load_after = round(os.getloadavg()[0], 2)
    times = _explain.store_times(url, queries)
    for result in results:
        result["store_ms"] = times[result["key"]]
    explain = [q for q, r in zip(queries, results, strict=True) if args.explain_all or not r["ok"]]
    plans = _explain.explain_all(url, explain, times)
    return {
        "loadavg": [load_before, load_after],
        "db": db,
        "database_version": _explain.database_version(url),
        "size_mib": _explain.size_mib(url),
        "migrate_s": migrate_s,
        "manifest": manifest,
        "queries": {q.key: {"label": q.label, "url": q.url()} for q in queries},
        "results": results,
        "plans": plans,
    }


# --- output ------------------------------------------------------------------------------


def metadata(args: argparse.Namespace, plan: Plan, reps: int, warmups: int) -> dict[str, Any]:
    sha = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return {
        "command": shlex.join(["python", "bench/query_bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "controltower": sha + (" + uncommitted src/ changes" if dirty else ""),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "reps": reps,
        "warmups": warmups,
        "plan": plan.__dict__,
        "quick": args.quick,
    }


def _output(argv: list[str]) -> str:
    import subprocess

    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def save(meta: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"query-{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print(f"raw results: {path.relative_to(ROOT)}")
    text = _explain.render_plans(runs)
    if text:
        plans = RESULTS_DIR / f"query-plans-{stamp}.txt"
        plans.write_text(text)
        print(f"query plans: {plans.relative_to(ROOT)}")


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    plan = Plan(traces=10_000) if args.quick else Plan()
    args.reps = args.reps or (10 if args.quick else 30)
    args.warmups = args.warmups if args.warmups is not None else (2 if args.quick else 3)
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    workdir = Path(tempfile.mkdtemp(prefix="query-bench-"))
    procs: list[Proc] = []
    ok = False
    try:
        runs = [run_db(db, args, plan, workdir, procs) for db in dbs]
        ok = True
    finally:
        for proc in procs:
            _procs.stop(proc)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)
    meta = metadata(args, plan, args.reps, args.warmups)
    save(meta, runs)
    print(_query_report.render(meta, runs))
    if not (args.no_docs or args.only or args.quick):
        _report.replace_section(
            DOC, _query_report.render(meta, runs), _query_report.START, _query_report.END
        )
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
