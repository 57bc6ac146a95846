"""py-spy profiles of the gateway under load: top functions and where the time goes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

START = "<!-- gateway-profile:start -->"
END = "<!-- gateway-profile:end -->"

# Where a sample's leaf frame lives → what part of the gateway it belongs to (first match).
COMPONENTS = [
    ("uvicorn/", "HTTP server (uvicorn: parse requests, write responses)"),
    ("httptools", "HTTP server (uvicorn: parse requests, write responses)"),
    ("controltower/providers/transport.py", "upstream HTTP client (providers/transport.py)"),
    ("controltower/providers/", "provider adapters and stream relay"),
    ("controltower/gateway/", "routing, retries and trace assembly (gateway/)"),
    ("controltower/server/", "request checks and dispatch (server/)"),
    ("controltower/domain/", "ids and clocks (domain/)"),
    ("controltower/", "other controltower code"),
    ("asyncio/", "event loop (asyncio/uvloop)"),
    ("uvloop", "event loop (asyncio/uvloop)"),
    ("orjson", "JSON (orjson)"),
]


def record(pyspy: str, pid: int, seconds: float, out: Path) -> None:
    """Sample every thread of `pid` for `seconds` into collapsed stacks."""
    argv = [pyspy, "record", "--pid", str(pid), "--duration", f"{int(seconds)}",
            "--rate", "200", "--format", "raw", "--nonblocking", "--subprocesses",
            "-o", str(out)]
    subprocess.run(argv, check=True, timeout=seconds + 60, capture_output=True)


def _samples(raw_path: Path) -> list[tuple[list[str], int]]:
    rows = []
    for line in raw_path.read_text().splitlines():
        stack, _, num = line.rpartition(" ")
        if stack and num.isdigit():
            rows.append((stack.split(";"), int(num)))
    return rows


def _frame(name: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file.py)' so lines of a function merge."""
    func, _, where = name.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{func} ({Path(path).name})" if path else func


def _is_writer(frames: list[str]) -> bool:
    return any("TraceWriter" in f for f in frames)


def _is_idle_wait(frames: list[str]) -> bool:
    # py-spy reports a thread blocked in Condition.wait with a timeout as running
    return frames[-1].startswith(("Condition.wait", "Event.wait"))


def top_functions(
    raw_path: Path, limit: int = 25, main_thread_only: bool = False
) -> tuple[list[tuple[str, int]], int]:
    """Self samples per leaf function (optionally only the event-loop thread's)."""
    counts: dict[str, int] = {}
    total = 0
    for frames, num in _samples(raw_path):
        if main_thread_only and "Thread._bootstrap" in ";".join(frames):
            continue
        leaf = _frame(frames[-1])
        counts[leaf] = counts.get(leaf, 0) + num
        total += num
    return sorted(counts.items(), key=lambda kv: -kv[1])[:limit], total


def components(raw_path: Path) -> tuple[dict[str, int], int, int]:
    """Event-loop samples per component (by leaf frame), their total, and busy writer samples."""
    counts: dict[str, int] = {}
    loop_total = writer = 0
    for frames, num in _samples(raw_path):
        if _is_writer(frames):
            writer += 0 if _is_idle_wait(frames) else num
            continue
        if "Thread._bootstrap" in ";".join(frames):
            continue
        loop_total += num
        leaf = frames[-1]
        name = next((label for key, label in COMPONENTS if key in leaf), "other libraries")
        counts[name] = counts.get(name, 0) + num
    return counts, loop_total, writer


def print_top(title: str, top: list[tuple[str, int]], total: int) -> None:
    """Print a top-functions table."""
    print(f"\n{title}: {total} samples at 200 Hz (idle time not sampled)")
    print(f"{'self %':>7}  function")
    for name, count in top:
        print(f"{100 * count / max(total, 1):6.1f}%  {name}")


def render(raw_path: Path, seconds: float, command: str) -> str:
    """The docs section: where the event loop's time goes, and the writer thread's load."""
    counts, total, writer = components(raw_path)
    rows = "\n".join(
        f"| {name} | {100 * n / max(total, 1):.1f}% |"
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1])
    )
    top, _ = top_functions(raw_path, 12, main_thread_only=True)
    top_rows = "\n".join(f"| `{name}` | {100 * n / max(total, 1):.1f}% |" for name, n in top)
    busy = 100 * total / max(seconds * 200, 1)
    return f"""## Where the proxy's time goes

- Command: `{command}`
- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Method: py-spy samples the gateway at 200 Hz for {seconds:g} s while wrk sends
  non-streaming requests at concurrency 16 through it to the fake upstream, tracing to
  SQLite. Shares are of the event-loop thread's samples, by the frame on top of the stack
  (self time). The event loop was busy in {busy:.0f}% of the samples; the trace writer
  thread was busy for {100 * writer / max(seconds * 200, 1):.0f}% of the time (SQLite
  work, mostly outside the GIL).

| part of the gateway | share of the event loop |
| --- | ---: |
{rows}

Top functions on the event loop (self time):

| function | share |
| --- | ---: |
{top_rows}
"""
