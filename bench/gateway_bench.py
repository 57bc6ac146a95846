"""Gateway overhead benchmark: controltower vs LiteLLM proxy vs direct, same run.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/gateway_bench.py                 # full run, ~10 min
    .venv/bin/python bench/gateway_bench.py --quick         # 3 s runs, 1 repetition
    .venv/bin/python bench/gateway_bench.py --skip-litellm  # no peer
    .venv/bin/python bench/gateway_bench.py --skip-controltower   # harness check only
    .venv/bin/python bench/gateway_bench.py --soak 300      # controltower RSS over 5 min
    .venv/bin/python bench/gateway_bench.py --profile       # py-spy during a c16 run

What it does: installs wrk (apt-get) and the LiteLLM peer venv
(/tmp/peer/litellm-venv, see /work/shared/PEERS.md) when missing; starts the
fake upstream ``bench/upstream.py`` in its own process; then for each target
(direct to the upstream, controltower, LiteLLM with one worker) runs wrk with a
Lua script (POST of a small chat request) for non-streaming and streaming
requests at concurrency 1, 16 and 64, 8 s per run x 3 repetitions (medians);
measures streaming time to first event with a raw asyncio client, RSS (idle,
after load, peak VmHWM) and spawn-to-ready / spawn-to-first-completion time.
Results replace the section between the gateway-bench markers of
docs/benchmarks.md; raw per-repetition data go to bench/results/.
Every process it starts is ended by its PID in a ``finally`` block.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _load
import _procs
import _profile
import _report
from _env import DOC, PYTHON, RESULTS_DIR, ROOT, VENV_BIN, machine
from _procs import Proc

LITELLM_VENV = Path("/tmp/peer/litellm-venv")
MASTER_KEY = "sk-bench-master-key"
CONCURRENCY = (1, 16, 64)
MODES = {"Non-streaming": False, "Streaming": True}
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Target:
    key: str
    base: str
    headers: dict[str, str]
    proc: Proc | None = None
    resources: dict[str, float] = field(default_factory=dict)
    trace_db: Path | None = None
    completed: int = 0  # requests answered, to compare with the traces stored

    @property
    def url(self) -> str:
        return self.base + _load.CHAT_PATH


@dataclass
class Settings:
    seconds: float
    reps: int
    warmup: float
    ttfb_requests: int
    workdir: Path
    starts: int = 3  # cold starts per gateway; start-up figures are their medians
    procs: list[Proc] = field(default_factory=list)
    started: int = 0  # gateway processes started so far (each gets a new trace file)


# --- set-up ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="controltower gateway benchmark")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 repetition")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-controltower", action="store_true")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 8)")
    parser.add_argument("--reps", type=int, help="repetitions per cell (default 3)")
    parser.add_argument("--ttfb-requests", type=int, help="streaming TTFB requests (200)")
    parser.add_argument("--soak", type=int, metavar="SECONDS", help="controltower soak only")
    parser.add_argument("--profile", action="store_true", help="py-spy controltower at c16")
    parser.add_argument("--profile-seconds", type=float, default=15.0)
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    parser.add_argument("--starts", type=int, default=3, help="cold starts per gateway (3)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, workdir: Path) -> Settings:
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    reps = args.reps or (1 if args.quick else 3)
    ttfb = args.ttfb_requests or (50 if args.quick else 200)
    starts = 1 if args.quick else max(1, args.starts)
    return Settings(seconds, reps, 2.0 if args.quick else 5.0, ttfb, workdir, starts)


def run_checked(argv: list[str], timeout: float) -> None:
    print("+", shlex.join(argv), flush=True)
    subprocess.run(argv, check=True, timeout=timeout)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        run_checked(["apt-get", "update"], 300)
        run_checked(["apt-get", "install", "-y", "wrk"], 300)


def ensure_litellm() -> None:
    if (LITELLM_VENV / "bin" / "litellm").exists():
        return
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    run_checked(["python3", "-m", "venv", str(LITELLM_VENV)], 120)
    run_checked([str(LITELLM_VENV / "bin" / "pip"), "install", "litellm[proxy]"], 1200)


def ensure_pyspy() -> str:
    pyspy = VENV_BIN / "py-spy"
    if not pyspy.exists():
        run_checked([PYTHON, "-m", "pip", "install", "py-spy"], 600)
    return str(pyspy)


def controltower_argv(config: Path, port: int) -> list[str]:
    cli = VENV_BIN / "controltower"
    head = [str(cli)] if cli.exists() else [PYTHON, "-m", "controltower"]
    return [*head, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]


# --- targets -----------------------------------------------------------------------------


def start_upstream(s: Settings) -> Target:
    port = _procs.free_port()
    argv = [PYTHON, str(ROOT / "bench" / "upstream.py"), "--port", str(port)]
    proc = _procs.spawn("upstream", argv, s.workdir)
    s.procs.append(proc)
    target = Target("direct", f"http://127.0.0.1:{port}", dict(JSON_HEADERS))
    _procs.wait_until(proc, lambda: _procs.request(target.base, "GET", "/health")[0] == 200, 20)
    return target


def _chat_ok(target: Target) -> bool:
    body = _load.chat_body(stream=False)
    status, _, _ = _procs.request(target.base, "POST", _load.CHAT_PATH, body, target.headers)
    return status == 200


def start_gateway(
    s: Settings, target: Target, argv: list[str], env: dict[str, str | None], health: str
) -> Target:
    """Spawn a gateway, time spawn → health 200 and spawn → first completion, idle RSS."""
    proc = _procs.spawn(target.key, argv, s.workdir, env)
    s.procs.append(proc)
    target.proc = proc
    ready = _procs.wait_until(
        proc, lambda: _procs.request(target.base, "GET", health)[0] == 200, 180
    )
    first = _procs.wait_until(proc, lambda: _chat_ok(target), 60)
    target.completed += 1
    time.sleep(1.0)
    idle = _procs.rss_mib(proc.pid)
    target.resources = {
        "ready_s": round(ready, 3),
        "first_completion_s": round(first, 3),
        "idle_rss_mib": idle["rss_mib"],
        "procs": idle["procs"],
    }
    print(
        f"  {target.key} ready in {ready:.2f} s, first completion {first:.2f} s, "
        f"idle RSS {idle['rss_mib']} MiB",
        flush=True,
    )
    return target


def start_controltower(s: Settings, upstream: Target) -> Target:
    port = _procs.free_port()
    config = {
        "models": [
            {
                "name": "bench",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "api_base": upstream.base + "/v1",
                        "api_key": "sk-bench",
                    }
                ],
                "retries": 0,
            }
        ]
    }
    path = s.workdir / "controltower.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    s.started += 1
    trace_db = s.workdir / f"traces-{s.started}.db"  # a first start: a new, empty database
    env: dict[str, str | None] = {"CONTROLTOWER_DATABASE_URL": f"sqlite:///{trace_db}"}
    target = Target("controltower", f"http://127.0.0.1:{port}", dict(JSON_HEADERS))
    target.trace_db = trace_db
    return start_gateway(s, target, controltower_argv(path, port), env, "/health")


def start_litellm(s: Settings, upstream: Target) -> Target:
    port = _procs.free_port()
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": upstream.base + "/v1",
                    "api_key": "sk-bench",
                },
            }
        ]
    }
    path = s.workdir / "litellm.yaml"
    path.write_text(json.dumps(config, indent=2))
    env: dict[str, str | None] = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "DATABASE_URL": None,
    }
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {MASTER_KEY}"}
    target = Target("litellm", f"http://127.0.0.1:{port}", headers)
    return start_gateway(s, target, argv, env, "/health/liveliness")


def count_traces(db: Path) -> int | None:
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
    except sqlite3.Error:
        return None


def stop_target(target: Target) -> None:
    """Stop gracefully (the trace writer flushes on SIGTERM), then count stored traces."""
    if target.proc is None:
        return
    _procs.stop(target.proc, timeout=30)
    if target.trace_db is not None:
        target.resources["traces_stored"] = count_traces(target.trace_db) or 0
        target.resources["requests_completed"] = target.completed


# --- measurement -------------------------------------------------------------------------


def lua_scripts(s: Settings, target: Target) -> dict[str, Path]:
    return {
        mode: _load.write_lua(
            s.workdir / f"{target.key}-{int(stream)}.lua", _load.chat_body(stream), target.headers
        )
        for mode, stream in MODES.items()
    }


def run_matrix(s: Settings, target: Target) -> dict[str, dict[str, list[dict[str, float]]]]:
    """wrk for every mode x concurrency, repetitions interleaved; raw results per cell."""
    scripts = lua_scripts(s, target)
    for script in scripts.values():
        target.completed += int(_load.run_wrk(target.url, script, 16, s.warmup)["requests"])
    raw: dict[str, dict[str, list[dict[str, float]]]] = {m: {} for m in MODES}
    for rep in range(s.reps):
        for mode, script in scripts.items():
            for conc in CONCURRENCY:
                res = _load.run_wrk(target.url, script, conc, s.seconds)
                raw[mode].setdefault(str(conc), []).append(res)
                target.completed += int(res["requests"])
                print(
                    f"  {target.key:12} {mode:13} c={conc:<3} rep {rep + 1}: "
                    f"{res['rps']:9.1f} req/s  p50 {res['p50_ms']:8.3f}  "
                    f"p99 {res['p99_ms']:8.3f} ms  errors "
                    f"{res['status_errors']}+{res['socket_errors']}",
                    flush=True,
                )
    return raw


def measure_target(s: Settings, target: Target) -> dict[str, Any]:
    print(f"== {target.key}", flush=True)
    runs = run_matrix(s, target)
    auth = {k: v for k, v in target.headers.items() if k != "Content-Type"}
    ttfb = _load.measure_ttfb(target.base, auth, s.ttfb_requests)
    target.completed += s.ttfb_requests
    print(
        f"  {target.key} TTFB median {ttfb.get('median_ms')} ms, "
        f"errors {ttfb['errors']}, trace headers {ttfb['trace_headers']}",
        flush=True,
    )
    if target.proc is not None:
        after = _procs.rss_mib(target.proc.pid)
        target.resources.update(after_rss_mib=after["rss_mib"], peak_rss_mib=after["hwm_mib"])
    return {"runs": runs, "ttfb": ttfb, "resources": target.resources}


def _median_cell(reps: list[dict[str, float]]) -> dict[str, float]:
    cell = {
        key: round(statistics.median(r[key] for r in reps), 3)
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps")
    }
    cell["status_errors"] = sum(int(r["status_errors"]) for r in reps)
    cell["socket_errors"] = sum(int(r["socket_errors"]) for r in reps)
    cell["reps"] = len(reps)
    return cell


def summarize(raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    targets = list(raw)
    modes: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODES}
    for key, data in raw.items():
        for mode, by_c in data["runs"].items():
            for conc, reps in by_c.items():
                modes[mode].setdefault(conc, {})[key] = _median_cell(reps)
    ttfb = {k: d["ttfb"] for k, d in raw.items()}
    resources = {k: d["resources"] for k, d in raw.items() if d["resources"]}
    return {"targets": targets, "modes": modes, "ttfb": ttfb, "resources": resources}


# --- metadata ----------------------------------------------------------------------------


def _output(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "n/a"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "n/a"


def _pkg_version(python: str, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return _output([python, "-c", code]) if Path(python).exists() else "n/a"


def versions() -> dict[str, str]:
    sha = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    controltower = _pkg_version(PYTHON, "controltower")
    if sha and " " not in sha:
        controltower += f" ({sha})"
    return {
        "controltower": controltower,
        "litellm": _pkg_version(str(LITELLM_VENV / "bin" / "python"), "litellm"),
        "python": _output([PYTHON, "-c", "import platform; print(platform.python_version())"]),
        "wrk": " ".join(_output(["wrk", "-v"]).split()[:2]),
    }


def metadata(s: Settings) -> dict[str, Any]:
    return {
        "command": command_line(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "seconds": s.seconds,
        "reps": s.reps,
        "ttfb_requests": s.ttfb_requests,
        "concurrency": list(CONCURRENCY),
    }


def save_json(prefix: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{prefix}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"raw results: {path.relative_to(ROOT)}")
    return path


# --- modes -------------------------------------------------------------------------------


def run_full(args: argparse.Namespace, s: Settings) -> None:
    upstream = start_upstream(s)
    raw = {"direct": measure_target(s, upstream)}
    starters = {"controltower": start_controltower, "litellm": start_litellm}
    skips = {"controltower": args.skip_controltower, "litellm": args.skip_litellm}
    for key, starter in starters.items():
        if skips[key]:
            continue
        print(f"== starting {key}", flush=True)
        target = cold_started(s, starter, upstream)
        try:
            raw[key] = measure_target(s, target)
        finally:
            stop_target(target)
    meta = metadata(s)
    summary = summarize(raw)
    save_json("gateway", {"meta": meta, "summary": summary, "raw": raw})
    text = _report.render(meta, summary)
    print("\n" + text)
    if not args.no_docs:
        _report.replace_section(DOC, text)
        print(f"updated {DOC.relative_to(ROOT)}")


def cold_started(
    s: Settings, starter: Callable[[Settings, Target], Target], upstream: Target
) -> Target:
    """Start a gateway `s.starts` times; keep the last one running, with median start-ups."""
    ready, first = [], []
    for i in range(s.starts):
        target = starter(s, upstream)
        ready.append(target.resources["ready_s"])
        first.append(target.resources["first_completion_s"])
        if i < s.starts - 1:
            stop_target(target)
    target.resources["ready_s"] = round(statistics.median(ready), 3)
    target.resources["first_completion_s"] = round(statistics.median(first), 3)
    target.resources["starts"] = len(ready)
    return target


def sample_soak(proc: Proc, wrk: subprocess.Popen[str], seconds: int) -> list[dict[str, float]]:
    start = time.perf_counter()
    samples = []
    while True:
        elapsed = time.perf_counter() - start
        samples.append({"t_s": round(elapsed, 1), **_procs.rss_mib(proc.pid)})
        if wrk.poll() is not None or elapsed > seconds + 60:
            return samples
        wait = 10.0 - (time.perf_counter() - start) % 10.0
        try:
            wrk.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def run_soak(args: argparse.Namespace, s: Settings) -> None:
    upstream = start_upstream(s)
    target = start_controltower(s, upstream)
    script = lua_scripts(s, target)["Non-streaming"]
    _load.run_wrk(target.url, script, 16, 5)
    assert target.proc is not None
    print(f"== soak {args.soak} s at c=16", flush=True)
    wrk = _load.start_wrk(target.url, script, 16, args.soak)
    try:
        samples = sample_soak(target.proc, wrk, args.soak)
        out, _ = wrk.communicate(timeout=60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    rss = [x["rss_mib"] for x in samples]
    soak = {
        "seconds": args.soak,
        "samples": samples,
        "wrk": _load.parse_wrk(out),
        "start_mib": rss[0],
        "end_mib": rss[-1],
        "max_mib": max(rss),
    }
    meta = metadata(s)
    save_json("soak", {"meta": meta, "soak": soak})
    text = _report.render_soak(meta, soak)
    print("\n" + text)
    if not args.no_docs:
        _report.replace_section(DOC, text, _report.SOAK_START, _report.SOAK_END)


def run_profile(args: argparse.Namespace, s: Settings) -> None:
    pyspy = ensure_pyspy()
    upstream = start_upstream(s)
    target = start_controltower(s, upstream)
    assert target.proc is not None
    script = lua_scripts(s, target)["Non-streaming"]
    _load.run_wrk(target.url, script, 16, 2)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"profile-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.txt"
    wrk = _load.start_wrk(target.url, script, 16, args.profile_seconds + 3)
    try:
        time.sleep(1.0)
        _profile.record(pyspy, target.proc.pid, args.profile_seconds, out)
        print(_load.parse_wrk(wrk.communicate(timeout=60)[0]))
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    print(f"\npy-spy raw stacks: {out.relative_to(ROOT)}")
    _profile.print_top("all threads", *_profile.top_functions(out))
    _profile.print_top(
        "event-loop thread only", *_profile.top_functions(out, 15, main_thread_only=True)
    )
    text = _profile.render(out, args.profile_seconds, command_line())
    _report.replace_section(DOC, text, _profile.START, _profile.END)
    print(f"updated {DOC.relative_to(ROOT)}")


def command_line() -> str:
    """How this run was started, for the docs."""
    return shlex.join(["python", "bench/gateway_bench.py", *sys.argv[1:]])


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    ensure_wrk()
    if not (args.skip_litellm or args.soak or args.profile):
        ensure_litellm()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    s = settings_from(args, workdir)
    ok = False
    try:
        if args.soak:
            run_soak(args, s)
        elif args.profile:
            run_profile(args, s)
        else:
            run_full(args, s)
        ok = True
    finally:
        for proc in reversed(s.procs):
            _procs.stop(proc)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
