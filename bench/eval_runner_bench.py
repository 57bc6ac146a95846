"""Eval runner benchmark: wall time against the ideal, the runner's CPU per item, a cached re-run.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/eval_runner_bench.py              # 1,000 items, 3 repetitions
    .venv/bin/python bench/eval_runner_bench.py --items 200 --reps 1 --no-docs

One eval of N items, each answered by a target call and scored by `contains` and an LLM
judge (`judge`, 1-5, structured output), through the in-process gateway onto the mock
provider at 50 ms per call, concurrency 32, on a SQLite store (traces, results, cache).
The ideal wall time is calls x latency / concurrency; the runner's CPU per item is the
process CPU time of the run minus the mock's sleeps (none: they are waits), over N. The
cached re-run makes the same calls again with every answer in the store's cache.
Results replace the section between the eval-runner-bench markers of docs/benchmarks.md;
raw data go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _env import DOC, RESULTS_DIR, git, machine
from _report import replace_section

from controltower.evals.session import run_spec
from controltower.evals.spec import parse_eval
from controltower.gateway.local import local_runtime
from controltower.settings.loader import parse_settings
from controltower.store import open_store

START = "<!-- eval-runner-bench:start -->"
END = "<!-- eval-runner-bench:end -->"
LATENCY_MS = 50
CONCURRENCY = 32

CONFIG = f"""
models:
  - name: fast
    deployments:
      - provider: mock
        model: fast-1
        price: {{input: 0.1, output: 0.4}}
        mock: {{ttft_ms: {LATENCY_MS}, reply: "Refunds are accepted within 30 days."}}
  - name: judge
    deployments:
      - provider: mock
        model: judge-1
        price: {{input: 0.1, output: 0.4}}
        mock: {{ttft_ms: {LATENCY_MS}, reply: '{{"reasoning": "Correct and polite.", "score": 5}}'}}
"""


def spec(items: int) -> Any:
    """The eval: N distinct questions, a target and two scorers."""
    dataset = [
        {
            "id": f"q{i:05}",
            "input": f"Question {i}: what is the refund window?",
            "expected": "30 days",
        }
        for i in range(items)
    ]
    return parse_eval(
        {
            "name": "bench",
            "dataset": dataset,
            "target": {"model": "fast", "messages": [{"role": "user", "content": "{{ input }}"}]},
            "scorers": [
                {"contains": "{{ expected }}"},
                {"judge": {"rubric": "Is the answer correct?", "model": "judge", "scale": "1-5"}},
            ],
            "concurrency": CONCURRENCY,
        }
    )


async def one(items: int, folder: Path) -> dict[str, float]:
    """A fresh store: a cold run, then a fully cached re-run."""
    store = open_store(f"sqlite:///{folder / 'bench.db'}")
    runtime = local_runtime(parse_settings(CONFIG, "bench.yaml"), store)
    eval_spec = spec(items)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        cold = (await run_spec(eval_spec, runtime))[0]
        cold_wall, cold_cpu = time.perf_counter() - wall, time.process_time() - cpu
        cpu, wall = time.process_time(), time.perf_counter()
        warm = (await run_spec(eval_spec, runtime))[0]
        warm_wall, warm_cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await runtime.aclose()
        store.close()
    calls = 2 * items
    ideal = calls * LATENCY_MS / 1000 / CONCURRENCY
    assert cold.run.summary["results"] == items, cold.run.summary
    assert warm.run.summary["cache"]["misses"] == 0, warm.run.summary
    return {
        "wall_s": cold_wall,
        "ideal_s": ideal,
        "ratio": cold_wall / ideal,
        "cpu_ms_per_item": cold_cpu * 1000 / items,
        "cached_wall_s": warm_wall,
        "cached_cpu_ms_per_item": warm_cpu * 1000 / items,
    }


def section(rows: list[dict[str, float]], items: int, command: str) -> str:
    """The docs/benchmarks.md section."""
    med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    m = machine()
    title = f"{items:,} items x (target + judge), mock at {LATENCY_MS} ms, c{CONCURRENCY}"
    return f"""## Eval runner: {title}

Made by `{command}` on {m["nproc"]} cores ({m["cpu"]}), Python {m["python"]}, commit
{git("rev-parse", "--short", "HEAD") or "unknown"}; medians of {len(rows)} repetitions, each
on a fresh SQLite store (traces, results and the call cache written as in a real run). The
runner's CPU includes the in-process gateway and the trace writer, which serve the calls.

| figure | controltower | target |
|---|---|---|
| wall time | {med["wall_s"]:.2f} s | |
| ideal (calls x latency / concurrency) | {med["ideal_s"]:.2f} s | |
| wall / ideal | {med["ratio"]:.3f}x | at most 1.10x |
| CPU per item (runner, gateway, traces, store) | {med["cpu_ms_per_item"]:.2f} ms | at most 0.3 ms |
| fully cached re-run, wall | {med["cached_wall_s"]:.2f} s | under 2 s |
| fully cached re-run, CPU per item | {med["cached_cpu_ms_per_item"]:.2f} ms | |

promptfoo and DeepEval on the same dataset, mock and concurrency are not measured yet."""


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    rows = []
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as folder:
            rows.append(asyncio.run(one(args.items, Path(folder))))
        print(f"rep {rep + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()))
    command = (
        "bench/eval_runner_bench.py"
        + (f" --items {args.items}" if args.items != 1000 else "")
        + (f" --reps {args.reps}" if args.reps != 3 else "")
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"eval-runner-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    if not args.no_docs:
        replace_section(DOC, section(rows, args.items, f".venv/bin/python {command}"), START, END)
    print(section(rows, args.items, command))


if __name__ == "__main__":
    main()
