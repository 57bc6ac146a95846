"""Eval runner benchmark: wall time against the ideal, the runner's CPU per item, a cached re-run.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/eval_runner_bench.py              # 1,000 items, 3 repetitions
    .venv/bin/python bench/eval_runner_bench.py --items 200 --reps 1 --no-docs
    .venv/bin/python bench/eval_runner_bench.py --no-peers   # controltower in process only

One eval of N items, each answered by a target call and scored by `contains` and an LLM
judge (`judge`, 1-5, structured output), through the in-process gateway onto the mock
provider at 50 ms per call, concurrency 32, on a SQLite store (traces, results, cache).
The ideal wall time is calls x latency / concurrency; the runner's CPU per item is the
process CPU time of the run minus the mock's sleeps (none: they are waits), over N. The
cached re-run makes the same calls again with every answer in the store's cache.

In the same run, unless --no-peers, the same dataset, latency and concurrency go through
`controltower eval run`, promptfoo and DeepEval, each as its own process against one fake
OpenAI upstream that answers after 50 ms (see bench/eval_peers.py, which installs the
peers outside the project when they are missing); the repetitions interleave the tools.
Results replace the section between the eval-runner-bench markers of docs/benchmarks.md;
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import eval_peers
from _env import DOC, RESULTS_DIR, git, machine
from _report import replace_section
from _waiting_client import WaitingClient

from controltower.evals.event_loop import run_to_end
from controltower.evals.session import EvalRuntime, run_spec
from controltower.evals.spec import parse_eval
from controltower.gateway.local import local_runtime
from controltower.settings.loader import parse_settings
from controltower.store import open_store

START = "<!-- eval-runner-bench:start -->"
END = "<!-- eval-runner-bench:end -->"
LATENCY_MS = eval_peers.LATENCY_MS
CONCURRENCY = eval_peers.CONCURRENCY
PEERS = ["controltower", "promptfoo", "deepeval"]
LABELS = {
    "inprocess": "controltower, in process",
    "controltower": "controltower CLI",
    "promptfoo": "promptfoo",
    "deepeval": "DeepEval",
}

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
    return parse_eval(
        {
            "name": "bench",
            "dataset": eval_peers.dataset(items),
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
    own_wall, own_cpu = await _runner_only(items, folder)
    calls = 2 * items
    ideal = calls * LATENCY_MS / 1000 / CONCURRENCY
    assert cold.run.summary["results"] == items, cold.run.summary
    assert warm.run.summary["cache"]["misses"] == 0, warm.run.summary
    return {
        "wall_s": cold_wall,
        "ideal_s": ideal,
        "ratio": cold_wall / ideal,
        "cpu_s": cold_cpu,
        "cpu_ms_per_item": cold_cpu * 1000 / items,
        "cached_wall_s": warm_wall,
        "cached_cpu_ms_per_item": warm_cpu * 1000 / items,
        "runner_wall_s": own_wall,
        "runner_cpu_ms_per_item": own_cpu * 1000 / items,
    }


async def _runner_only(items: int, folder: Path) -> tuple[float, float]:
    """The same eval on a client that only waits 50 ms a call: the runner's own cost."""
    store = open_store(f"sqlite:///{folder / 'runner-only.db'}")
    client = WaitingClient(LATENCY_MS / 1000)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        done = (await run_spec(spec(items), EvalRuntime(client, store.eval_store())))[0]
        elapsed, spent = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        store.close()
    assert done.run.summary["results"] == items and client.calls == 2 * items, done.run.summary
    return elapsed, spent


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ours_table(med: dict[str, float]) -> str:
    own = med["runner_cpu_ms_per_item"]
    return f"""| figure | controltower | target |
|---|---|---|
| wall time | {med["wall_s"]:.2f} s | |
| ideal (calls x latency / concurrency) | {med["ideal_s"]:.2f} s | |
| wall / ideal | {med["ratio"]:.3f}x | at most 1.10x |
| CPU per item (runner, gateway, traces, store) | {med["cpu_ms_per_item"]:.2f} ms | |
| the runner's own CPU per item (a client that only waits) | {own:.2f} ms | at most 0.3 ms |
| the runner alone, wall / ideal | {med["runner_wall_s"] / med["ideal_s"]:.3f}x | |
| fully cached re-run, wall | {med["cached_wall_s"]:.2f} s | under 2 s |
| fully cached re-run, CPU per item | {med["cached_cpu_ms_per_item"]:.2f} ms | |"""


def _times(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    ratio = value / base
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"


def _calls_seen(row: dict[str, Any]) -> str:
    if "calls" not in row:
        return "-"
    return f"{row['target_calls']:,} + {row['judge_calls']:,}, {row['max_in_flight']}"


def _tool_row(label: str, rows: list[dict[str, Any]], base: dict[str, float | None]) -> str:
    """One line of the side-by-side table: medians of the tool's repetitions."""
    med = {k: _median(rows, k) for k in ("wall_s", "calls_span_s", "ratio", "cpu_s")}
    per_item = _median(rows, "cpu_ms_per_item")
    span = "-" if med["calls_span_s"] is None else f"{med['calls_span_s']:.2f}"
    calls = _calls_seen(rows[0])
    cells = [
        label,
        str(len(rows)),
        f"{med['wall_s']:.2f}",
        span,
        f"{rows[0]['ideal_s']:.3f}",
        f"{med['ratio']:.2f}x",
        f"{med['cpu_s']:.2f}",
        f"{per_item:.2f}",
        calls,
        _times(med["wall_s"], base["wall_s"]),
        _times(med["cpu_s"], base["cpu_s"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _peer_table(ours: list[dict[str, float]], runs: dict[str, Any]) -> str:
    head = (
        "| tool | reps | wall s (median) | first call to last answer s | ideal s | wall / ideal "
        "| CPU s | CPU ms / item | calls seen (target + judge), most in flight "
        "| wall vs controltower CLI | CPU vs controltower CLI |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    cli = runs.get("controltower")
    base = {k: _median(cli.rows, k) if cli and cli.rows else None for k in ("wall_s", "cpu_s")}
    lines = [head, _tool_row(LABELS["inprocess"], ours, base)]
    for tool, run in runs.items():
        label = f"{LABELS[tool]} {run.info.get('version', '')}".strip()
        if run.error:
            reason = run.error.replace("|", "\\|")
            lines.append(f"| {label} | 0 | not measured: {reason} |" + " |" * 8)
        else:
            lines.append(_tool_row(label, run.rows, base))
    return "\n".join(lines)


def _peer_notes(runs: dict[str, Any], reps: int) -> str:
    versions = [
        f"{LABELS[t]} {r.info['version']} ({r.info['runtime']})"
        for t, r in runs.items()
        if t != "controltower" and "runtime" in r.info
    ]
    notes = [f"- Versions: {', '.join(versions) or 'no peer was installed'}."]
    for tool, run in runs.items():
        if run.error:
            notes.append(f"- {LABELS[tool]} has no figures: {run.error}")
        notes += [f"- {LABELS[tool]}: {note}" for note in run.notes]
    deepeval = runs.get("deepeval")
    if deepeval and deepeval.rows and "evaluate_s" in deepeval.rows[0]:
        parts = {k: _median(deepeval.rows, k) for k in ("import_s", "target_s", "evaluate_s")}
        notes.append(
            f"- DeepEval's own split (medians): importing it {parts['import_s']:.2f} s, the "
            f"target calls {parts['target_s']:.2f} s, `evaluate(...)` {parts['evaluate_s']:.2f} s. "
            "Its `OpenAIModel` builds a new OpenAI client (an HTTP client with its own TLS "
            "context) for every judge call, part of its CPU per item."
        )
    short = [f"{LABELS[t]} {len(r.rows)}" for t, r in runs.items() if 0 < len(r.rows) < reps]
    if short:
        notes.append(
            f"- Fewer than {reps} repetitions (a tool rests once its runs took more than "
            f"`--peer-budget-s`): {', '.join(short)}."
        )
    return "\n".join(notes)


PEER_METHOD = """Side by side, in the same run: every tool below but the first runs as its own
process, the way its users run it, against one fake OpenAI upstream (`bench/upstream.py
--latency-ms 50`, its own process on 127.0.0.1), with the same {items:,} items, one target
and one judge call per item, concurrency {conc}. The upstream's target reply contains the
expected text and each tool's judge gets its best verdict in the format its parser reads,
so every item passes. *controltower CLI* is `controltower eval run` (a `contains` check and
a 1-5 judge, the models as `openai` deployments, a fresh SQLite store that gets the traces,
the results and the call cache); *promptfoo* is `promptfoo eval -j {conc} --no-cache` (a
`contains` assertion and `llm-rubric`, results also in its own fresh SQLite database);
*DeepEval* is `bench/peers/deepeval_eval.py`: DeepEval has no target runner, so the script
calls the target with the OpenAI SDK at {conc} in flight, then `evaluate(...)` scores with a
`GEval` judge, `AsyncConfig(max_concurrent={conc})`, its cache off. None shows a progress
bar or a per-item table. Telemetry and update checks are off; promptfoo, which reports
"telemetry disabled" to its server all the same, gets a loopback proxy that refuses, and
the others connect to nothing but the upstream, so nothing leaves the machine. *Wall* is from
spawning the process to its exit (start-up and imports included); *first call to last
answer* is the upstream's own clock; *CPU* is the process tree's user + system time
(`getrusage` of the waited-for child). A repetition counts only if the upstream saw exactly
{items:,} target and {items:,} judge calls from it and all {items:,} items passed; the
first line is the in-process figure above (no process start, the mock provider in process)."""


def section(
    rows: list[dict[str, float]], items: int, command: str, runs: dict[str, Any] | None
) -> str:
    """The docs/benchmarks.md section."""
    med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    m = machine()
    title = f"{items:,} items x (target + judge), mock at {LATENCY_MS} ms, c{CONCURRENCY}"
    text = f"""## Eval runner: {title}

Made by `{command}` on {m["nproc"]} cores ({m["cpu"]}), Python {m["python"]}, commit
{git("rev-parse", "--short", "HEAD") or "unknown"}{_dirty()}, {_now()}, load average at the end
{m["loadavg_1m"]}; medians of {len(rows)} repetitions, each on a fresh SQLite
store (traces, results and the call cache written as in a real run). The CPU per item
includes the in-process gateway and the trace writer, which serve the calls; the
runner's own is measured by the same eval on a model client that only waits 50 ms a call
(`bench/_waiting_client.py`: scheduling, templates, scorers, the judge's prompt and
parsing, the call cache and the results in the store, no gateway, no traces).

{_ours_table(med)}
"""
    if runs is None:
        return text + "\npromptfoo and DeepEval were not run this time (`--no-peers`)."
    return "\n".join(
        [
            text,
            "### Beside promptfoo and DeepEval",
            "",
            PEER_METHOD.format(items=items, conc=CONCURRENCY),
            "",
            _peer_table(rows, runs),
            "",
            _peer_notes(runs, len(rows)),
        ]
    )


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def _dirty() -> str:
    return " + uncommitted changes" if git("status", "--porcelain", "--", "src") else ""


def _cli_version() -> dict[str, str]:
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return {"version": f"({commit}{_dirty()})"}


def run_all(args: argparse.Namespace) -> tuple[list[dict[str, float]], dict[str, Any] | None]:
    """Our in-process runs and, unless --no-peers, the tools' runs, interleaved by repetition."""
    runs = eval_peers.install_all(PEERS) if args.peers else None
    if runs is not None:
        runs["controltower"].info = _cli_version()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="eval-runner-") as work:
        upstream = eval_peers.Upstream(Path(work))
        try:
            if runs is not None:
                _start(upstream, runs)
            for rep in range(args.reps):
                with tempfile.TemporaryDirectory() as folder:
                    rows.append(run_to_end(one(args.items, Path(folder))))
                print(f"rep {rep + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()))
                if runs is not None:
                    eval_peers.run_round(runs, args.items, upstream, args.peer_budget_s)
        finally:
            upstream.stop()
    return rows, runs


def _start(upstream: eval_peers.Upstream, runs: dict[str, Any]) -> None:
    """Start the fake upstream; without it no tool can run, and each says why."""
    try:
        upstream.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        for run in runs.values():
            run.error = run.error or f"could not be run: the fake upstream did not start: {exc}"


def main() -> None:
    """Run the benchmark and record it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run controltower's CLI, promptfoo and DeepEval (default: on)",
    )
    parser.add_argument(
        "--peer-budget-s", type=float, default=600, help="wall time after which a tool rests"
    )
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    rows, runs = run_all(args)
    command = (
        "bench/eval_runner_bench.py"
        + (f" --items {args.items}" if args.items != 1000 else "")
        + (f" --reps {args.reps}" if args.reps != 3 else "")
        + ("" if args.peers else " --no-peers")
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"eval-runner-{stamp}.json"
    tools = {t: vars(r) for t, r in (runs or {}).items()}
    out.write_text(json.dumps({"machine": machine(), "rows": rows, "tools": tools}, indent=2))
    text = section(rows, args.items, f".venv/bin/python {command}", runs)
    if not args.no_docs:
        replace_section(DOC, text, START, END)
    print(text)


if __name__ == "__main__":
    main()
