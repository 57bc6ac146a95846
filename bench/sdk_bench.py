"""SDK overhead benchmark: controltower's `@ct.observe()` vs Langfuse's `@observe()`, same run.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/sdk_bench.py              # 3 rounds x 5 repetitions x 20,000 calls
    .venv/bin/python bench/sdk_bench.py --quick      # 1 round, smaller counts
    .venv/bin/python bench/sdk_bench.py --no-docs    # do not touch docs/benchmarks.md

What it does: installs the Langfuse SDK in /tmp/peer/langfuse-venv when missing (see
/work/shared/PEERS.md); starts a sink in its own process (so it does not compete for the
benchmark's GIL) that answers 200 to controltower's `POST /api/ingest` and to Langfuse's
OTLP/HTTP export and counts the spans each one delivers; then, in alternating rounds, runs
this file as a worker under each SDK's Python. A worker times N calls of a trivial
function (`add(a, b)`, input and output capture on, export on), plain and decorated, and
reports per call (decorated - plain) / N: the wall time of the loop, and the CPU time
of the whole process (all threads) over the loop and the flush after it, so that the
export work of the background thread is counted too. It also times calls one by one
(interleaved plain/decorated, median of each).
After each worker the sink's span count is compared with the calls made: nothing dropped.
Figures are medians over all repetitions. Results replace the section between the
sdk-bench markers of docs/benchmarks.md; raw data go to bench/results/.
Every process it starts is ended by its PID in a `finally` block.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import DOC, PYTHON, RESULTS_DIR, ROOT, git, machine

LANGFUSE_VENV = Path("/tmp/peer/langfuse-venv")
LANGFUSE_PYTHON = str(LANGFUSE_VENV / "bin" / "python")
START = "<!-- sdk-bench:start -->"
END = "<!-- sdk-bench:end -->"
SDKS = ("controltower", "langfuse")
LABELS = {"controltower": "controltower", "langfuse": "Langfuse"}
# queues large enough for a whole repetition, for both SDKs: the comparison is of the
# cost of recording a span, not of which SDK drops first
QUEUE_SIZE = 200_000


# --- the sink (its own process) ----------------------------------------------------------


def run_sink(port: int) -> None:
    """Answer 200 to both SDKs' exports and count the spans they carry."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import orjson
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    counts = {"controltower": 0, "langfuse": 0}
    lock = threading.Lock()

    def body_of(handler: BaseHTTPRequestHandler) -> bytes:
        data = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if handler.headers.get("Content-Encoding") == "gzip":
            data = zlib.decompress(data, 31)
        return data

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            data = body_of(self)
            if self.path.endswith("/api/ingest"):
                batch = orjson.loads(data)["batch"]
                spans = sum(1 for event in batch if event["type"] == "span")
                self._count("controltower", spans)
                self._answer(orjson.dumps({"accepted": len(batch), "rejected": 0, "errors": []}))
            elif self.path.endswith("/v1/traces"):
                request = ExportTraceServiceRequest.FromString(data)
                spans = sum(
                    len(scope.spans)
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                )
                self._count("langfuse", spans)
                self._answer(b"", "application/x-protobuf")
            else:
                self._answer(b"{}")

        def do_GET(self) -> None:
            if self.path == "/counts":
                with lock:
                    self._answer(orjson.dumps(counts))
            elif self.path == "/reset":
                with lock:
                    counts.update(controltower=0, langfuse=0)
                self._answer(b"{}")
            else:  # anything an SDK asks at start-up (project lookups, health)
                self._answer(b"{}")

        def _count(self, sdk: str, spans: int) -> None:
            with lock:
                counts[sdk] += spans

        def _answer(self, body: bytes, kind: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


# --- the worker (runs under each SDK's Python) -------------------------------------------


def add(a: int, b: int) -> int:
    """The trivial function being observed."""
    return a + b


def _controltower(url: str) -> tuple[Any, Any, Any, Any]:
    import controltower as ct

    ct.init(url=url, max_queue=QUEUE_SIZE)
    return (
        ct.observe()(add),
        lambda: ct.flush(120),
        lambda: {"version": ct.__version__, "stats": vars_of(ct.stats())},
        ct.shutdown,
    )


def _langfuse(url: str) -> tuple[Any, Any, Any, Any]:
    import importlib.metadata

    from langfuse import Langfuse, observe

    client = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", host=url)
    return (
        observe()(add),
        client.flush,
        lambda: {"version": importlib.metadata.version("langfuse")},
        client.shutdown,
    )


def vars_of(stats: Any) -> dict[str, Any]:
    """A dataclass with slots as a dict."""
    return {name: getattr(stats, name) for name in stats.__dataclass_fields__}


def run_worker(sdk: str, url: str, calls: int, reps: int, samples: int) -> None:
    """Time the calls and print the figures as JSON on stdout."""
    traced, flush, describe, stop = (_controltower if sdk == "controltower" else _langfuse)(url)
    made = 0
    for i in range(2000):  # warm up: imports, first connection, caches
        traced(i, 1)
    made += 2000
    flush()
    loop_us: list[float] = []
    total_us: list[float] = []
    cpu = time.process_time_ns  # all threads of this process: the export thread's work too
    for _ in range(reps):
        cpu_start = cpu()
        plain_ns = _time_loop(add, calls)
        plain_cpu = cpu() - cpu_start
        cpu_start = cpu()
        start = time.perf_counter_ns()
        for i in range(calls):
            traced(i, 1)
        looped = time.perf_counter_ns()
        flush()
        used = cpu() - cpu_start
        made += calls
        loop_us.append((looped - start - plain_ns) / calls / 1000)
        total_us.append((used - plain_cpu) / calls / 1000)
    one_by_one = _time_each(traced, samples)
    made += samples
    flush()
    info = describe()
    stop()
    info.update(sdk=sdk, loop_us=loop_us, total_us=total_us, calls=calls, made=made)
    info.update(one_by_one)
    print(json.dumps(info))


def _time_loop(fn: Any, calls: int) -> int:
    start = time.perf_counter_ns()
    for i in range(calls):
        fn(i, 1)
    return time.perf_counter_ns() - start


def _time_each(traced: Any, samples: int) -> dict[str, float]:
    clock = time.perf_counter_ns
    plain: list[int] = []
    decorated: list[int] = []
    for i in range(samples):
        t0 = clock()
        add(i, 1)
        t1 = clock()
        traced(i, 1)
        t2 = clock()
        plain.append(t1 - t0)
        decorated.append(t2 - t1)
    decorated.sort()
    return {
        "each_plain_p50_us": statistics.median(plain) / 1000,
        "each_p50_us": statistics.median(decorated) / 1000,
        "each_p90_us": decorated[int(len(decorated) * 0.9)] / 1000,
        "each_p99_us": decorated[int(len(decorated) * 0.99)] / 1000,
    }


# --- the orchestrator ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("main", "sink", "worker"), default="main")
    parser.add_argument("--sdk", choices=SDKS)
    parser.add_argument("--url")
    parser.add_argument("--port", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5, help="repetitions per round")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per repetition")
    parser.add_argument("--samples", type=int, default=20_000, help="calls timed one by one")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.reps, args.calls, args.samples = 1, 3, 5000, 5000
    return args


def ensure_langfuse() -> None:
    import subprocess

    if Path(LANGFUSE_PYTHON).exists():
        return
    print("installing the Langfuse SDK in", LANGFUSE_VENV, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LANGFUSE_VENV)], check=True)
    subprocess.run([LANGFUSE_PYTHON, "-m", "pip", "install", "-q", "langfuse"], check=True)


def worker_env(sdk: str, url: str) -> dict[str, str | None]:
    if sdk == "controltower":
        return {"CONTROLTOWER_API_KEY": None, "CONTROLTOWER_URL": None}
    return {
        "LANGFUSE_HOST": url,
        "LANGFUSE_BASE_URL": url,
        "LANGFUSE_PUBLIC_KEY": "pk-lf-bench",
        "LANGFUSE_SECRET_KEY": "sk-lf-bench",
        "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE_SIZE),
    }


def run_one(args: argparse.Namespace, sdk: str, url: str, workdir: Path) -> dict[str, Any]:
    import _procs

    python = PYTHON if sdk == "controltower" else LANGFUSE_PYTHON
    argv = [python, str(Path(__file__).resolve()), "--role", "worker", "--sdk", sdk]
    argv += ["--url", url, "--reps", str(args.reps), "--calls", str(args.calls)]
    argv += ["--samples", str(args.samples)]
    _procs.request(url, "GET", "/reset")
    proc = _procs.spawn(f"worker-{sdk}", argv, workdir, worker_env(sdk, url))
    try:
        proc.popen.wait(1800)
    finally:
        _procs.stop(proc)
    if proc.popen.returncode != 0:
        raise RuntimeError(f"the {sdk} worker failed:\n{proc.log_tail()}")
    lines = [line for line in proc.log_path.read_text().splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    _, _, body = _procs.request(url, "GET", "/counts")
    result["spans_at_sink"] = json.loads(body)[sdk]
    print(
        f"  {sdk}: loop {statistics.median(result['loop_us']):.2f} us, CPU incl. export "
        f"{statistics.median(result['total_us']):.2f} us, one by one p50 "
        f"{result['each_p50_us'] - result['each_plain_p50_us']:.2f} us; spans "
        f"{result['spans_at_sink']} / {result['made']}",
        flush=True,
    )
    return result


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for sdk, results in runs.items():
        loop = [v for r in results for v in r["loop_us"]]
        total = [v for r in results for v in r["total_us"]]
        each = [r["each_p50_us"] - r["each_plain_p50_us"] for r in results]
        summary[sdk] = {
            "version": results[0]["version"],
            "loop_median_us": statistics.median(loop),
            "loop_min_us": min(loop),
            "loop_max_us": max(loop),
            "total_median_us": statistics.median(total),
            "each_p50_us": statistics.median(each),
            "each_p90_us": statistics.median(r["each_p90_us"] for r in results),
            "each_p99_us": statistics.median(r["each_p99_us"] for r in results),
            "made": sum(r["made"] for r in results),
            "spans_at_sink": sum(r["spans_at_sink"] for r in results),
            "repetitions": len(loop),
        }
    ours, peer = summary.get("controltower"), summary.get("langfuse")
    if ours and peer:
        summary["ratio"] = {
            key: peer[key] / ours[key] if ours[key] > 0 else None
            for key in ("loop_median_us", "total_median_us", "each_p50_us")
        }
    return summary


def render(meta: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace) -> str:
    m = meta["machine"]
    lines = [
        "## SDK overhead per `@observe`d call",
        "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}, load average at the end {m['loadavg_1m']}",
        f"- Versions: controltower {summary['controltower']['version']} "
        f"({meta['commit']} + working tree), "
        f"Langfuse {summary['langfuse']['version']}",
        f"- Method: a trivial function `add(a, b)` with input and output capture on and "
        f"export on, each SDK in its own process exporting over HTTP to one sink process "
        f"that answers 200 and counts spans. {args.rounds} rounds (the SDKs alternate) x "
        f"{args.reps} repetitions x {args.calls:,} calls; per call = (decorated loop - "
        f"plain loop) / calls, median over the repetitions. *CPU incl. export*: CPU time "
        f"of the whole process (all its threads) over the loop and the flush after it, "
        f"minus the plain loop's, per call: the SDK's total work per span. *One by "
        f"one*: {args.samples:,} calls timed singly, interleaved with the plain function, "
        f"median (p90, p99) of decorated minus the plain median. Queues were sized "
        f"({QUEUE_SIZE:,}; the defaults are 10,000 for controltower and OpenTelemetry's 2,048 "
        f"for Langfuse) so that neither SDK drops; the sink's counts prove it.",
        "",
        "| SDK | per call, loop (µs, median) | min - max | CPU incl. export (µs) "
        "| one by one p50 (µs) | p90 / p99 (µs) | spans at sink / calls |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for sdk in SDKS:
        s = summary[sdk]
        lines.append(
            f"| {LABELS[sdk]} | {s['loop_median_us']:.2f} | {s['loop_min_us']:.2f} - "
            f"{s['loop_max_us']:.2f} | {s['total_median_us']:.2f} | {s['each_p50_us']:.2f} | "
            f"{s['each_p90_us']:.1f} / {s['each_p99_us']:.1f} | "
            f"{s['spans_at_sink']:,} / {s['made']:,} |"
        )
    ratio = summary["ratio"]
    ours = summary["controltower"]
    lines += [
        "",
        f"Langfuse / controltower: **{ratio['loop_median_us']:.1f}x** (loop), "
        f"{ratio['total_median_us']:.1f}x (CPU incl. export), {ratio['each_p50_us']:.1f}x "
        f"(one by one). Targets: median at most 10 µs "
        f"({'met' if ours['loop_median_us'] <= 10 else 'NOT met'}: "
        f"{ours['loop_median_us']:.2f} µs) and at least 10x lower than Langfuse "
        f"({'met' if ratio['loop_median_us'] >= 10 else 'NOT met'}).",
    ]
    return "\n".join(lines) + "\n"


def run_main(args: argparse.Namespace) -> None:
    import tempfile
    from datetime import UTC, datetime

    import _procs
    import _report

    ensure_langfuse()
    workdir = Path(tempfile.mkdtemp(prefix="sdk-bench-"))
    port = _procs.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [PYTHON, str(Path(__file__).resolve()), "--role", "sink", "--port", str(port)]
    sink = _procs.spawn("sink", argv, workdir)
    runs: dict[str, list[dict[str, Any]]] = {sdk: [] for sdk in SDKS}
    try:
        _procs.wait_until(sink, lambda: _procs.request(url, "GET", "/counts")[0] == 200, 30)
        for number in range(args.rounds):
            print(f"== round {number + 1} of {args.rounds}", flush=True)
            order = SDKS if number % 2 == 0 else SDKS[::-1]
            for sdk in order:
                runs[sdk].append(run_one(args, sdk, url, workdir))
    finally:
        _procs.stop(sink)
    meta = {
        "command": shlex.join(["python", "bench/sdk_bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
    }
    summary = summarize(runs)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"sdk-{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "summary": summary, "raw": runs}, indent=1) + "\n")
    print(f"raw results: {path.relative_to(ROOT)}")
    text = render(meta, summary, args)
    print("\n" + text)
    if not args.no_docs:
        _report.replace_section(DOC, text, START, END)
        print(f"updated {DOC.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "sink":
        run_sink(args.port)
    elif args.role == "worker":
        run_worker(args.sdk, args.url, args.calls, args.reps, args.samples)
    else:
        run_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
