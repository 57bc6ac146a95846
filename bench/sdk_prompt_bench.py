"""`ct.get_prompt` benchmark: a cached lookup (target at most 5 µs), rendering, a cold fetch.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/sdk_prompt_bench.py            # 7 repetitions x 200,000 lookups
    .venv/bin/python bench/sdk_prompt_bench.py --quick    # smaller counts
    .venv/bin/python bench/sdk_prompt_bench.py --no-docs  # do not touch docs/benchmarks.md

What it does: pushes one chat prompt (two messages, a variable schema with a default and
an enum) into a SQLite file in a temporary directory and points the SDK at it (embedded
mode; a cached lookup never reaches the store or the server, so the mode does not matter
for it). Then, in one process:
- cached: times N calls of `ct.get_prompt(name, label="production")` in a loop and
  reports the wall time per call; the median over the repetitions;
- cached, one by one: the median of single calls each timed with perf_counter_ns (the
  timer's own cost included, which is why it is higher);
- render: the median of `prompt.render(question=...)` one by one (compiled templates
  cached), for scale;
- cold: the median time of a first lookup after clearing the cache (reads the store).
Results replace the section between the sdk-prompt-bench markers of docs/benchmarks.md;
raw data go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import DOC, RESULTS_DIR, git, machine
from _report import replace_section

import controltower as ct
from controltower.domain.prompt import PromptContent, VariableSpec
from controltower.sdk import prompts
from controltower.store import open_prompt_store

START = "<!-- sdk-prompt-bench:start -->"
END = "<!-- sdk-prompt-bench:end -->"
TARGET_US = 5.0
NAME = "support/refund-policy"
CONTENT = PromptContent(
    messages=(
        {
            "role": "system",
            "content": "You answer refunds.{% if tier == 'pro' %} Pro: 60 days.{% endif %}",
        },
        {"role": "user", "content": "{{ question }}"},
    ),
    model="fast",
    params={"temperature": 0.2, "max_tokens": 400},
    variables={
        "question": VariableSpec(required=True),
        "tier": VariableSpec(enum=("free", "pro"), default="free"),
    },
)


def main() -> None:
    """Run the benchmark and report it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args()
    reps, calls = (3, 20_000) if args.quick else (7, 200_000)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'prompts.db'}"
        store = open_prompt_store(url)
        store.create_version(NAME, CONTENT, message="bench", author="bench")
        store.move_label(NAME, "production", 1, actor="bench")
        store.engine.dispose()
        ct.init(database_url=url, enabled=False)
        result = measure(reps, calls)
        prompts.clear_cache()
    result.update(machine=machine(), commit=git("rev-parse", "--short", "HEAD"), quick=args.quick)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (RESULTS_DIR / f"sdk-prompt-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(report(result))
    if not args.no_docs:
        replace_section(DOC, report(result), START, END)


def measure(reps: int, calls: int) -> dict[str, Any]:
    """Cached lookups in a loop and one by one, rendering, and cold lookups (µs)."""
    get = ct.get_prompt
    prompt = get(NAME, label="production")  # fills the cache
    loops = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            get(NAME, label="production")
        loops.append((time.perf_counter() - start) / calls * 1e6)
    single = _one_by_one(lambda: get(NAME, label="production"), calls // 10)
    render = _one_by_one(lambda: prompt.render(question="Can I return it?"), calls // 100)
    cold = []
    for _ in range(min(reps * 10, 50)):
        prompts.clear_cache()
        start = time.perf_counter()
        get(NAME, label="production")
        cold.append((time.perf_counter() - start) * 1e6)
    return {
        "reps": reps,
        "calls": calls,
        "cached_loop_us": loops,
        "cached_loop_median_us": statistics.median(loops),
        "cached_single_median_us": single,
        "render_median_us": render,
        "cold_median_us": statistics.median(cold),
    }


def _one_by_one(call: Any, n: int) -> float:
    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        call()
        times.append(clock() - start)
    return statistics.median(times) / 1000


def report(result: dict[str, Any]) -> str:
    """The docs section."""
    m = result["machine"]
    command = "bench/sdk_prompt_bench.py" + (" --quick" if result["quick"] else "")
    verdict = "met" if result["cached_loop_median_us"] <= TARGET_US else "NOT met"
    rows = [
        ("`ct.get_prompt` from cache, in a loop (per call)", result["cached_loop_median_us"]),
        ("`ct.get_prompt` from cache, one call timed alone", result["cached_single_median_us"]),
        ("`prompt.render(...)` (compiled template cached)", result["render_median_us"]),
        ("`ct.get_prompt` cold: first lookup, read from SQLite", result["cold_median_us"]),
    ]
    lines = [
        "## SDK: `ct.get_prompt`",
        "",
        f"Made by `.venv/bin/python {command}`"
        f" at commit {result['commit']} on {m['nproc']} CPUs ({m['cpu']}), Python {m['python']},"
        f" load {m['loadavg_1m']}. Medians; {result['reps']} repetitions of"
        f" {result['calls']:,} cached lookups.",
        "",
        "| what | µs |",
        "|---|---:|",
        *(f"| {what} | {value:.2f} |" for what, value in rows),
        "",
        f"Target: a cached lookup at most {TARGET_US:.0f} µs — {verdict}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
