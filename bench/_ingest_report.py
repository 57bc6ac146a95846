"""Markdown of the ingest benchmark's results, and the summary of its py-spy profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- ingest-bench:start -->"
END = "<!-- ingest-bench:end -->"
TARGET = 20_000
PROFILE_RATE = 100  # py-spy samples per second
SPANS_PER_BATCH, TRACES_PER_BATCH, SPANS_PER_TRACE = 100, 10, 10

# --- profile summary ---------------------------------------------------------------------

# a sample counts for each stage with one of its (function, file) frames on the stack
STAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("event-loop thread (HTTP, routes, decoding)", []),
    ("  decode + map (ingest/otlp.py, protobuf)", [("decode_protobuf", "ingest/otlp.py")]),
    ("    of which attribute mapping (semconv.py)", [("map_span", "ingest/semconv.py")]),
    ("trace-writer thread", [("_run", "tracing/writer.py")]),
    ("  price + roll up", [("_prepare", "tracing/writer.py")]),
    ("  store.write", [("write", "store/traces.py")]),
    ("    rows from records (serialize.py)", [("record_to_rows", "store/serialize.py")]),
    (
        "    read stored traces and totals",
        [("_stored_traces", "store/traces.py"), ("_totals", "store/traces.py")],
    ),
    ("    bulk INSERT (bind, JSON, execute)", [("run", "store/bulk.py")]),
    ("other threads (thread pool)", []),
]


def _samples(path: Path) -> list[tuple[list[str], int]]:
    rows = []
    for line in path.read_text().splitlines():
        stack, _, num = line.rpartition(" ")
        if stack and num.isdigit():
            rows.append((stack.split(";"), int(num)))
    return rows


def _has(frames: list[str], wanted: list[tuple[str, str]]) -> bool:
    for frame in frames:
        name, _, where = frame.partition(" (")
        short = name.rsplit(".", 1)[-1]  # py-spy names methods Class.method
        if any(short == func and place in where for func, place in wanted):
            return True
    return False


def _thread(frames: list[str]) -> str:
    if _has(frames, [("_run", "tracing/writer.py")]):
        return "writer"
    return "other" if _has(frames, [("_bootstrap", "threading.py")]) else "loop"


def profile_table(path: Path, seconds: float) -> list[str]:
    """Shares of the GIL-holding samples by stage, and the top self-time functions."""
    samples = _samples(path)
    total = sum(n for _, n in samples) or 1
    lines = [
        f"GIL held in {100 * total / (seconds * PROFILE_RATE):.0f}% of the samples "
        f"({total} at {PROFILE_RATE} Hz over {seconds:g} s).",
        "",
        "| stage (inclusive) | share of GIL time |",
        "| --- | ---: |",
    ]
    by_thread = {"loop": 0, "writer": 0, "other": 0}
    for frames, n in samples:
        by_thread[_thread(frames)] += n
    for label, wanted in STAGES:
        if not wanted:
            n = by_thread["loop" if label.startswith("event") else "other"]
        else:
            n = sum(c for frames, c in samples if _has(frames, wanted))
        lines.append(f"| {label} | {100 * n / total:.1f}% |")
    leaves: dict[str, int] = {}
    for frames, n in samples:
        func, _, where = frames[-1].partition(" (")
        name = f"{func} ({Path(where.rstrip(')').rsplit(':', 1)[0]).name})"
        leaves[name] = leaves.get(name, 0) + n
    lines += ["", "| top functions (self) | share |", "| --- | ---: |"]
    for name, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| `{name}` | {100 * n / total:.1f}% |")
    return lines


# --- report ------------------------------------------------------------------------------


def render(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "## Ingest throughput (OTLP protobuf)",
        "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}; controltower {meta['controltower']}, Python {meta['python']}",
        f"- Machine: {meta['machine']['nproc']} CPUs ({meta['machine']['cpu']}), load average "
        f"at the end {meta['loadavg_1m']} (other work shares this machine)",
        f"- Method: `controltower serve --workers {meta.get('workers', 1)}` (default settings) "
        "receives OTLP/HTTP protobuf exports "
        f"of {SPANS_PER_BATCH} spans ({TRACES_PER_BATCH} traces x {SPANS_PER_TRACE} GenAI "
        f"spans, {meta['body_kib']:.0f} KiB each) from a separate load process with "
        f"{meta['connections']} keep-alive connections for {meta['seconds']:g} s x "
        f"{meta['reps']} runs; 503s are retried after Retry-After. *Stored* is rows counted "
        "in the database, per second from the start of the load until the writer had "
        "written everything; *accepted* is what the server took in while the load ran. "
        "Medians of the runs. *Server CPU* is the server processes' user + system time per "
        "stored span (a figure the machine's other load disturbs less than the rates); "
        "*CPU busy* is that time over the run's wall time (2.0 = both cores).",
        "",
        "| database | stored spans/s | accepted spans/s | drain after load s | target "
        "| server CPU µs/span | CPU busy | load avg | spans stored | lost | writer drops "
        "| 503s (retried) | errors |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for result in results:
        s = result["summary"]
        verdict = "met" if s["stored_per_s"] >= TARGET else "missed"
        lines.append(
            f"| {result['db']} | {s['stored_per_s']:,.0f} | {s['accepted_per_s']:,.0f} | "
            f"{s['drain_s']:.1f} | {TARGET:,} {verdict} | {s['cpu_us']:.0f} | "
            f"{s['cpu_share']:.2f} | {s['loadavg']:.1f} | {s['spans_stored']:,} | {s['lost']} | "
            f"{s['dropped']:.0f} | {s['refused']} | {s['errors']} |"
        )
    for result in results:
        if result.get("profile_lines"):
            lines += [
                "",
                f"### Where the time goes ({result['db']})",
                "",
                f"py-spy (GIL-holding samples) on the server during one more run "
                f"({result['profile']}):",
                "",
                *result["profile_lines"],
            ]
    return "\n".join(lines) + "\n"
