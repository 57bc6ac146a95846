"""Ingest throughput: OTLP protobuf batches of 100 GenAI spans into SQLite and PostgreSQL.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/ingest_bench.py                 # SQLite and PostgreSQL, 3 x 10 s
    .venv/bin/python bench/ingest_bench.py --quick         # 3 s, 1 run, docs untouched
    .venv/bin/python bench/ingest_bench.py --db sqlite     # one database
    .venv/bin/python bench/ingest_bench.py --profile       # + a py-spy run per database

What it does: for each database it starts `controltower serve` (its own process, default
settings: trace queue 10,000 records, writer batches of 256) on a new SQLite file, or on
a new PostgreSQL schema of postgresql://postgres@127.0.0.1:5432/test that it drops at
the end. A separate load process (this script with --load) posts OTLP/HTTP protobuf
exports of 100 spans (10 traces x 10 spans in the GenAI semantic conventions: an agent
span and nine chat calls with model, tokens and messages of a few hundred bytes) over
several keep-alive connections for a fixed time; a 503 (queue full) is retried after its
Retry-After, as OTLP exporters do. After the load stops it waits until the server's
writer has written everything (`/metrics`), counts the rows, and reports spans STORED
per second from the start of the load to the last write (the sustained rate), the rate
the server accepted them, and whether every accepted span was stored (nothing dropped).
Figures are medians of the runs. Results replace the ingest-bench section of
docs/benchmarks.md; raw data go to bench/results/. Every process it starts is ended by
its PID; load goes only to 127.0.0.1 and every run stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ingest_report
import _procs
import _report
from _env import DOC, PYTHON, RESULTS_DIR, ROOT, VENV_BIN, git
from _procs import Proc

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TRACES_PER_BATCH = _ingest_report.TRACES_PER_BATCH
SPANS_PER_TRACE = _ingest_report.SPANS_PER_TRACE
SPANS_PER_BATCH = _ingest_report.SPANS_PER_BATCH
PROFILE_RATE = _ingest_report.PROFILE_RATE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="3 s, 1 run, docs untouched")
    parser.add_argument("--profile", action="store_true", help="py-spy one more run per db")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=1, help="`controltower serve --workers N` processes"
    )
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # load-process mode
    parser.add_argument("--nonce", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.reps = 3.0, 1
    return args


# --- the load process --------------------------------------------------------------------


def _message(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _chat_attributes(i: int) -> dict[str, Any]:
    question = f"Step {i}: summarise the customer's last three orders and their status. " * 4
    answer = "Order 1 shipped on Monday, order 2 is packed, order 3 awaits payment. " * 3
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.response.id": f"chatcmpl-{i:08d}",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 420 + i,
        "gen_ai.usage.output_tokens": 85 + i,
        "gen_ai.input.messages": _message("user", question),
        "gen_ai.output.messages": _message("assistant", answer),
        "server.address": "api.openai.com",
    }


def any_value(value: Any) -> Any:
    """A str, int, float or list of str as an OTLP AnyValue."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    if isinstance(value, list):
        made = AnyValue()
        made.array_value.values.extend(any_value(v) for v in value)
        return made
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def build_template() -> tuple[bytes, list[bytes]]:
    """One serialized export of 10 traces x 10 spans, and the placeholder trace id of each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource = {
        "service.name": "support-bot",
        "service.version": "2.3.1",
        "deployment.environment": "bench",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
    }
    for key, value in resource.items():
        resource_spans.resource.attributes.add(key=key, value=any_value(value))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    placeholders = [os.urandom(16) for _ in range(TRACES_PER_BATCH)]
    start = time.time_ns()
    for trace_id in placeholders:
        root = os.urandom(8)
        for i in range(SPANS_PER_TRACE):
            span = scope_spans.spans.add(
                trace_id=trace_id, span_id=root if i == 0 else os.urandom(8)
            )
            span.start_time_unix_nano = start + i * 1_000_000
            span.end_time_unix_nano = start + (i + 1) * 900_000_000
            if i == 0:
                span.name = "invoke_agent support"
                attributes = {
                    "gen_ai.operation.name": "invoke_agent",
                    "session.id": "s-1",
                    "user.id": "u-1",
                }
            else:
                span.parent_span_id = root
                span.name = "chat gpt-4o-mini"
                attributes = _chat_attributes(i)
            for key, value in attributes.items():
                span.attributes.add(key=key, value=any_value(value))
    return request.SerializeToString(), placeholders


class Batches:
    """Export bodies with fresh trace ids: the template with its ids patched in place."""

    def __init__(self, nonce: bytes) -> None:
        self.template, placeholders = build_template()
        self.offsets = [self._find(p) for p in placeholders]
        self.nonce = nonce[:8].ljust(8, b"\0")
        self.counter = itertools.count(1)

    def _find(self, needle: bytes) -> list[int]:
        found, at = [], self.template.find(needle)
        while at >= 0:
            found.append(at)
            at = self.template.find(needle, at + 1)
        assert len(found) == SPANS_PER_TRACE, "a placeholder id matched elsewhere"
        return found

    def next(self) -> bytes:
        body = bytearray(self.template)
        for offsets in self.offsets:
            trace_id = self.nonce + next(self.counter).to_bytes(8, "big")
            for at in offsets:
                body[at : at + 16] = trace_id
        return bytes(body)


def _worker(url: str, batches: Batches, deadline: float, out: dict[str, int]) -> None:
    host, port = url.removeprefix("http://").split(":")
    headers = {"Content-Type": "application/x-protobuf"}
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = batches.next()
    while time.monotonic() < deadline:
        try:
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            out["errors"] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            continue
        if response.status == 200:
            out["batches"] += 1
            body = batches.next()
        elif response.status == 503:  # queue full: back off as an OTLP exporter does
            out["refused"] += 1
            wait = float(response.headers.get("retry-after") or 1)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
        else:
            out["errors"] += 1
            out[f"status_{response.status}"] = out.get(f"status_{response.status}", 0) + 1
            body = batches.next()
    conn.close()


def run_load(url: str, seconds: float, connections: int, nonce: str) -> dict[str, Any]:
    """Post exports from `connections` threads for `seconds`; counts of what happened."""
    batches = Batches(bytes.fromhex(nonce))
    counts = [{"batches": 0, "refused": 0, "errors": 0} for _ in range(connections)]
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(target=_worker, args=(url, batches, deadline, out), daemon=True)
        for out in counts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    total: dict[str, Any] = {}
    for out in counts:
        for key, value in out.items():
            total[key] = total.get(key, 0) + value
    total["elapsed_s"] = time.monotonic() - started
    total["spans_accepted"] = total["batches"] * SPANS_PER_BATCH
    total["body_bytes"] = len(batches.template)
    return total


# --- databases and the server ------------------------------------------------------------


@contextmanager
def database(db: str, workdir: Path) -> Iterator[str]:
    """A new, empty database URL: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if db == "sqlite":
        yield f"sqlite:///{workdir / f'ingest-{uuid.uuid4().hex[:8]}.db'}"
        return
    import psycopg

    base = POSTGRES_URL.replace("+psycopg", "")
    schema = f"ct_ingest_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def count_spans(url: str) -> int:
    """Rows in the spans table."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM spans").fetchone()
        return int(row[0]) if row else 0


def start_server(url: str, workdir: Path, db: str, workers: int = 1) -> tuple[Proc, str]:
    """`controltower serve` on a free loopback port over the database."""
    return _procs.serve_controltower(url, workdir, db, workers=workers, ready_s=120)


def metrics(base: str) -> dict[str, float]:
    """The server's Prometheus counters, by name."""
    status, _, body = _procs.request(base, "GET", "/metrics")
    if status != 200:
        return {}
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def wait_drained(base: str, timeout_s: float = 300) -> dict[str, float]:
    """Poll /metrics until the writer has written (or dropped) everything it was given."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = metrics(base)
        done = m.get("controltower_traces_written_total", 0) + m.get(
            "controltower_traces_dropped_total", 0
        )
        if (
            m
            and m.get("controltower_trace_queue_depth", 1) == 0
            and done >= m.get("controltower_traces_enqueued_total", 0)
        ):
            return m
        time.sleep(0.05)
    raise TimeoutError("the trace writer did not drain in time")


def wait_stored(url: str, rows: int, timeout_s: float = 300) -> None:
    """Poll the database until it holds `rows` spans (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while count_spans(url) < rows and time.monotonic() < deadline:
        time.sleep(0.05)


# --- runs --------------------------------------------------------------------------------


def load_argv(base: str, seconds: float, connections: int) -> list[str]:
    nonce = os.urandom(8).hex()
    return [
        PYTHON,
        str(Path(__file__).resolve()),
        "--load",
        base,
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
        "--nonce",
        nonce,
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its live children (workers) have used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def one_run(
    base: str, url: str, args: argparse.Namespace, pid: int, profile_out: Path | None = None
) -> dict[str, Any]:
    """One timed load; spans stored per second until the writer caught up."""
    before_rows, before = count_spans(url), wait_drained(base)
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    load = subprocess.Popen(
        load_argv(base, args.seconds, args.connections), stdout=subprocess.PIPE, text=True
    )
    spy = start_pyspy(pid, args.seconds, profile_out) if profile_out is not None else None
    try:
        out, _ = load.communicate(timeout=args.seconds + 120)
    finally:
        if load.poll() is None:
            load.kill()
    result = json.loads(out)
    load_done = time.monotonic()
    # every accepted span in the database: the measure whatever the number of workers
    # (each worker answers /metrics for itself alone)
    wait_stored(url, before_rows + result["spans_accepted"])
    drained = time.monotonic()
    after = wait_drained(base)
    server_cpu = cpu_seconds(pid) - cpu_before
    if spy is not None:
        spy.wait(args.seconds + 120)
    stored = count_spans(url) - before_rows
    counters = {
        key: after[f"controltower_traces_{key}_total"] - before[f"controltower_traces_{key}_total"]
        for key in ("written", "dropped")
    }
    return {
        **result,
        "spans_stored": stored,
        "traces_written": counters["written"],
        "traces_dropped": counters["dropped"],
        "drain_s": round(drained - load_done, 3),
        "stored_per_s": stored / (drained - started),
        "accepted_per_s": result["spans_accepted"] / result["elapsed_s"],
        "server_cpu_us_per_span": 1e6 * server_cpu / max(stored, 1),
        "server_cpu_share": server_cpu / (drained - started),
        "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
        "lost": result["spans_accepted"] - stored,
    }


def start_pyspy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    pyspy = VENV_BIN / "py-spy"
    if not pyspy.exists():
        subprocess.run([PYTHON, "-m", "pip", "install", "py-spy"], check=True, timeout=600)
    argv = [
        str(pyspy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(PROFILE_RATE),
        "--format",
        "raw",
        "--gil",
        "-o",
        str(out),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_db(db: str, args: argparse.Namespace, workdir: Path, procs: list[Proc]) -> dict[str, Any]:
    print(f"{db}:", flush=True)
    with database(db, workdir) as url:
        proc, base = start_server(url, workdir, db, args.workers)
        procs.append(proc)
        try:
            warm = argparse.Namespace(**{**vars(args), "seconds": 2.0})
            one_run(base, url, warm, proc.pid)  # first requests: imports, price lookups, statements
            runs = []
            for rep in range(args.reps):
                run = one_run(base, url, args, proc.pid)
                runs.append(run)
                print(
                    f"  run {rep + 1}: {run['stored_per_s']:,.0f} spans/s stored "
                    f"(accepted {run['accepted_per_s']:,.0f}/s, drain {run['drain_s']:.1f} s, "
                    f"503s {run['refused']}, lost {run['lost']}; server CPU "
                    f"{run['server_cpu_us_per_span']:.0f} µs/span, load avg {run['loadavg_1m']})",
                    flush=True,
                )
            profile = None
            if args.profile:
                profile = RESULTS_DIR / f"ingest-profile-{db}-{_stamp()}.txt"
                run = one_run(base, url, args, proc.pid, profile)
                print(f"  profiled run: {run['stored_per_s']:,.0f} spans/s -> {profile}")
        finally:
            _procs.stop(proc)
    return {"db": db, "runs": runs, "profile": str(profile.relative_to(ROOT)) if profile else None}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    runs = result["runs"]
    return {
        "stored_per_s": statistics.median(r["stored_per_s"] for r in runs),
        "accepted_per_s": statistics.median(r["accepted_per_s"] for r in runs),
        "drain_s": statistics.median(r["drain_s"] for r in runs),
        "cpu_us": statistics.median(r["server_cpu_us_per_span"] for r in runs),
        "cpu_share": statistics.median(r["server_cpu_share"] for r in runs),
        "loadavg": statistics.median(r["loadavg_1m"] for r in runs),
        "spans_stored": sum(r["spans_stored"] for r in runs),
        "lost": sum(r["lost"] for r in runs),
        "dropped": sum(r["traces_dropped"] for r in runs),
        "refused": sum(r["refused"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def metadata(args: argparse.Namespace, body_bytes: int) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    dirty = git("status", "--porcelain", "--", "src")
    return {
        "command": shlex.join(["python", "bench/ingest_bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "controltower": git("rev-parse", "--short", "HEAD")
        + (" + uncommitted src/ changes" if dirty else ""),
        "python": sys.version.split()[0],
        "machine": {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu},
        "loadavg_1m": Path("/proc/loadavg").read_text().split()[0],
        "seconds": args.seconds,
        "reps": args.reps,
        "connections": args.connections,
        "workers": args.workers,
        "body_kib": body_bytes / 1024,
    }


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        print(json.dumps(run_load(args.load, args.seconds, args.connections, args.nonce)))
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    procs: list[Proc] = []
    ok = False
    try:
        results = [run_db(db, args, workdir, procs) for db in dbs]
        ok = True
    finally:
        for proc in procs:
            _procs.stop(proc)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)
    for result in results:
        result["summary"] = summary(result)
        if result["profile"]:
            result["profile_lines"] = _ingest_report.profile_table(
                ROOT / result["profile"], args.seconds
            )
    meta = metadata(args, results[0]["runs"][0]["body_bytes"])
    path = RESULTS_DIR / f"ingest-{_stamp()}.json"
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"raw results: {path.relative_to(ROOT)}")
    text = _ingest_report.render(meta, results)
    print(text)
    if not (args.quick or args.no_docs):
        _report.replace_section(DOC, text, _ingest_report.START, _ingest_report.END)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
