"""Governance benchmark: what API keys, budgets, rate limits and the exact cache cost a call.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/governance_bench.py                 # full run, ~8 min
    .venv/bin/python bench/governance_bench.py --quick         # 3 s runs, 1 repetition
    .venv/bin/python bench/governance_bench.py --skip-litellm  # no peer
    .venv/bin/python bench/governance_bench.py --quick --no-docs

What it does: installs wrk (apt-get) and the LiteLLM peer venv (/tmp/peer/litellm-venv,
see /work/shared/PEERS.md) when missing; starts the fake upstream ``bench/upstream.py``
and four ``controltower serve`` processes on it, each tracing to its own SQLite file:

- ``plain``: a master key only, called with it;
- ``checks``: the same with an API key (made with ``controltower keys create`` before
  start), a budget and a rate limit per key held in memory, called with the key;
- ``redis``: ``checks`` with ``redis_url`` (db 13, flushed before and after);
- ``cache``: ``plain`` with ``cache: {ttl_s: 3600}`` on the alias.

wrk (closed loop, non-streaming chat requests with ``max_tokens``) runs at concurrency 1
(latency) and 16 (throughput) against each of them and against the upstream directly,
8 s per run x 3 repetitions, the targets interleaved in a rotating order; figures are
medians. Then, unless --skip-litellm, LiteLLM's proxy (one worker, no database) runs the
same load three times: with its master key only, with what it can enforce of governance
without a database (per-deployment rpm/tpm, a provider budget), and with its in-memory
cache. The set-up is checked as it runs: the rate limit headers on a checked call, the
cache's HIT header on a sample, the upstream's call count during every run (0 for cache
hits), Redis holding counters, traces stored against requests answered.
Results replace the section between the governance-bench markers of docs/benchmarks.md;
raw per-repetition data go to bench/results/. Every process it starts is ended by its PID
in a ``finally`` block.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _governance_report
import _load
import _procs
from _env import DOC, PYTHON, ROOT, VENV_BIN, git, machine
from _procs import Proc
from gateway_bench import (
    LITELLM_VENV,
    MASTER_KEY,
    controltower_argv,
    count_traces,
    ensure_litellm,
    ensure_wrk,
    save_json,
    versions,
)

REDIS_URL = "redis://127.0.0.1:6379/13"
CONCURRENCY = (1, 16)
JSON_HEADERS = {"Content-Type": "application/json"}
BUDGETS = [{"scope": "key", "usd": 1_000_000}]
RATE_LIMITS = [{"scope": "key", "rpm": 100_000_000, "tpm": 10_000_000_000}]
LITELLM_LIMITS = {"rpm": 100_000_000, "tpm": 10_000_000_000}
LITELLM_BUDGET = {"openai": {"budget_limit": 1_000_000, "time_period": "30d"}}
CACHE_HEADERS = {"controltower": "x-controltower-cache", "litellm": "x-litellm-cache-key"}


@dataclass
class Target:
    key: str
    base: str
    headers: dict[str, str]
    proc: Proc | None = None
    trace_db: Path | None = None
    checks: dict[str, Any] = field(default_factory=dict)  # what the set-up checks found
    answered: int = 0  # requests answered, to compare with the traces stored

    @property
    def url(self) -> str:
        return self.base + _load.CHAT_PATH

    @property
    def controltower(self) -> bool:
        return self.trace_db is not None


@dataclass
class Settings:
    seconds: float
    reps: int
    warmup: float
    hit_sample: int
    workdir: Path
    procs: list[Proc] = field(default_factory=list)


# --- set-up ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="controltower governance benchmark")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 repetition")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 8)")
    parser.add_argument("--reps", type=int, help="repetitions per cell (default 3)")
    parser.add_argument("--hit-sample", type=int, default=50, help="requests checked for HIT")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, workdir: Path) -> Settings:
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    reps = args.reps or (1 if args.quick else 3)
    return Settings(seconds, reps, 2.0 if args.quick else 5.0, args.hit_sample, workdir)


def redis_client() -> Any | None:
    """A client of db 13, or None when Redis does not answer (the Redis target is skipped)."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        client.ping()
        return client
    except Exception as exc:  # no module, no server: both mean "no Redis here"
        print(f"Redis at {REDIS_URL} not usable ({exc}): the Redis target is skipped")
        return None


def flush_redis(client: Any | None) -> None:
    if client is not None:
        client.flushdb()


def _cli() -> list[str]:
    cli = VENV_BIN / "controltower"
    return [str(cli)] if cli.exists() else [PYTHON, "-m", "controltower"]


def create_api_key(database_url: str) -> str:
    """`controltower keys create` on the target's database; its secret (printed on stdout)."""
    argv = [*_cli(), "keys", "create", "--project", "bench", "--name", "governance-bench"]
    argv += ["--database-url", database_url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip()


# --- targets -----------------------------------------------------------------------------


def start_upstream(s: Settings) -> Target:
    port = _procs.free_port()
    argv = [PYTHON, str(ROOT / "bench" / "upstream.py"), "--port", str(port)]
    proc = _procs.spawn("upstream", argv, s.workdir)
    s.procs.append(proc)
    target = Target("direct", f"http://127.0.0.1:{port}", dict(JSON_HEADERS), proc)
    _procs.wait_until(proc, lambda: _procs.request(target.base, "GET", "/health")[0] == 200, 20)
    return target


def upstream_calls(upstream: Target) -> int:
    """Chat calls the upstream has answered since it started."""
    status, _, body = _procs.request(upstream.base, "GET", "/stats")
    if status != 200:
        raise RuntimeError(f"upstream /stats answered {status}")
    return int(json.loads(body)["chat"])


def controltower_config(upstream: Target, kind: str) -> dict[str, Any]:
    alias: dict[str, Any] = {
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
    if kind == "cache":
        alias["cache"] = {"ttl_s": 3600}
    config: dict[str, Any] = {"master_key": MASTER_KEY, "models": [alias]}
    if kind in ("checks", "redis"):
        config.update(budgets=BUDGETS, rate_limits=RATE_LIMITS)
    if kind == "redis":
        config["redis_url"] = REDIS_URL
    return config


def _serve(
    s: Settings, target: Target, argv: list[str], env: dict[str, str | None], health: str
) -> None:
    proc = _procs.spawn(target.key, argv, s.workdir, env)
    s.procs.append(proc)
    target.proc = proc
    ready = _procs.wait_until(
        proc, lambda: _procs.request(target.base, "GET", health)[0] == 200, 180
    )
    print(f"  {target.key} (pid {proc.pid}) ready in {ready:.2f} s on {target.base}", flush=True)


def start_controltower(s: Settings, upstream: Target, kind: str) -> Target:
    """`controltower serve --config FILE --port P`, tracing to a new SQLite file."""
    port = _procs.free_port()
    config = s.workdir / f"controltower-{kind}.yaml"
    config.write_text(json.dumps(controltower_config(upstream, kind), indent=2))  # JSON is YAML
    trace_db = s.workdir / f"traces-{kind}.db"
    database_url = f"sqlite:///{trace_db}"
    secret = create_api_key(database_url) if kind in ("checks", "redis") else MASTER_KEY
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {secret}"}
    target = Target(kind, f"http://127.0.0.1:{port}", headers, trace_db=trace_db)
    env: dict[str, str | None] = {
        "CONTROLTOWER_DATABASE_URL": database_url,
        "CONTROLTOWER_MASTER_KEY": None,
        "CONTROLTOWER_URL": None,
    }
    _serve(s, target, controltower_argv(config, port), env, "/health")
    return target


def litellm_config(upstream: Target, kind: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "api_base": upstream.base + "/v1",
        "api_key": "sk-bench",
    }
    config: dict[str, Any] = {"general_settings": {"master_key": MASTER_KEY}}
    if kind == "litellm-governed":
        params.update(LITELLM_LIMITS)
        config["router_settings"] = {
            "routing_strategy": "usage-based-routing-v2",  # the strategy that enforces rpm/tpm
            "provider_budget_config": LITELLM_BUDGET,
        }
        # accepted, but not enforced without a database (LiteLLM's docs: it fails open)
        config["litellm_settings"] = {"max_budget": 1_000_000, "budget_duration": "30d"}
    if kind == "litellm-cache":
        config["litellm_settings"] = {"cache": True, "cache_params": {"type": "local"}}
    config["model_list"] = [{"model_name": "bench", "litellm_params": params}]
    return config


def start_litellm(s: Settings, upstream: Target, kind: str) -> Target:
    port = _procs.free_port()
    path = s.workdir / f"{kind}.yaml"
    path.write_text(json.dumps(litellm_config(upstream, kind), indent=2))
    env: dict[str, str | None] = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "DATABASE_URL": None,
    }
    argv = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(path)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {MASTER_KEY}"}
    target = Target(kind, f"http://127.0.0.1:{port}", headers)
    _serve(s, target, argv, env, "/health/liveliness")
    return target


def stop_target(target: Target) -> None:
    """Stop gracefully (controltower's trace writer flushes on SIGTERM), count its traces."""
    if target.proc is None:
        return
    _procs.stop(target.proc, timeout=30)
    if target.trace_db is not None:
        target.checks["traces_stored"] = count_traces(target.trace_db) or 0
        target.checks["requests_answered"] = target.answered


# --- checks of the set-up ----------------------------------------------------------------


def chat(target: Target) -> tuple[int, dict[str, str], bytes]:
    body = _load.chat_body(stream=False)
    return _procs.request(target.base, "POST", _load.CHAT_PATH, body, target.headers)


def check_first_call(target: Target) -> None:
    """One call must answer 200; a checked target must show its rate limit headers."""
    status, headers, body = chat(target)
    target.answered += status == 200
    if status != 200:
        raise RuntimeError(f"{target.key}: first call answered {status}: {body[:300]!r}")
    if target.key in ("checks", "redis"):
        limit = headers.get("x-ratelimit-limit-requests")
        target.checks["ratelimit_limit_requests"] = limit
        if limit != str(RATE_LIMITS[0]["rpm"]):
            raise RuntimeError(f"{target.key}: the key's rate limit is not applied: {headers}")


def sample_hits(target: Target, n: int) -> int:
    """Calls of `n` that the cache answered (controltower's HIT header, LiteLLM's cache key)."""
    name = CACHE_HEADERS["litellm" if target.key.startswith("litellm") else "controltower"]
    hits = 0
    for _ in range(n):
        status, headers, _ = chat(target)
        target.answered += status == 200
        value = headers.get(name)
        hits += value == "HIT" if name == "x-controltower-cache" else value is not None
    return hits


def metric(target: Target, name: str) -> float | None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    status, _, body = _procs.request(target.base, "GET", "/metrics", headers=auth)
    for line in body.decode().splitlines() if status == 200 else []:
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def settle(target: Target, limit_s: float = 30.0) -> None:
    """Let a controltower target's trace writer empty its queue before the next run."""
    if not target.controltower:
        time.sleep(0.5)
        return
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        depth = metric(target, "controltower_trace_queue_depth")
        if depth is None or depth == 0:
            return
        time.sleep(0.1)


# --- measurement -------------------------------------------------------------------------


def prepare(s: Settings, target: Target) -> Path:
    """First call, Lua script, warm-up at c16 (the cache's one miss is in it), HIT sample."""
    check_first_call(target)
    script = _load.write_lua(
        s.workdir / f"{target.key}.lua", _load.chat_body(stream=False), target.headers
    )
    warm = _load.run_wrk(target.url, script, 16, s.warmup)
    target.answered += int(warm["requests"]) - int(warm["status_errors"])
    if target.key.endswith("cache"):
        hits = sample_hits(target, s.hit_sample)
        target.checks["hits_sampled"] = f"{hits}/{s.hit_sample}"
        print(f"  {target.key}: {hits} of {s.hit_sample} sampled calls were cache hits")
    settle(target)
    return script


def measure(
    upstream: Target, target: Target, script: Path, conc: int, s: Settings
) -> dict[str, float]:
    """One wrk run; the upstream's calls during it are counted with the result."""
    before = upstream_calls(upstream)
    res = _load.run_wrk(target.url, script, conc, s.seconds)
    res["upstream_calls"] = upstream_calls(upstream) - before
    target.answered += int(res["requests"]) - int(res["status_errors"])
    print(
        f"  {target.key:17} c={conc:<3} {res['rps']:9.1f} req/s  p50 {res['p50_ms']:7.3f}  "
        f"p99 {res['p99_ms']:7.3f} ms  errors {res['status_errors']}+{res['socket_errors']}  "
        f"upstream calls {res['upstream_calls']}",
        flush=True,
    )
    settle(target)
    return res


def run_group(s: Settings, upstream: Target, targets: list[Target]) -> dict[str, Any]:
    """Repetitions of every target x concurrency, the targets' order rotated per repetition."""
    scripts = {t.key: prepare(s, t) for t in targets}
    raw: dict[str, dict[str, list[dict[str, float]]]] = {t.key: {} for t in targets}
    for rep in range(s.reps):
        print(f"-- repetition {rep + 1} of {s.reps}", flush=True)
        shift = rep % len(targets)
        for target in targets[shift:] + targets[:shift]:
            for conc in CONCURRENCY:
                res = measure(upstream, target, scripts[target.key], conc, s)
                raw[target.key].setdefault(str(conc), []).append(res)
    return raw


def median_cell(reps: list[dict[str, float]]) -> dict[str, float]:
    cell = {
        key: round(statistics.median(r[key] for r in reps), 3)
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "rps")
    }
    for key in ("status_errors", "socket_errors", "upstream_calls", "requests"):
        cell[key] = sum(int(r[key]) for r in reps)
    cell["reps"] = len(reps)
    return cell


def summarize(raw: dict[str, Any], checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cells = {
        key: {conc: median_cell(reps) for conc, reps in by_c.items()} for key, by_c in raw.items()
    }
    return {"cells": cells, "checks": checks}


def run_controltower(s: Settings, upstream: Target, redis: Any | None) -> dict[str, Any]:
    kinds = [k for k in ("plain", "checks", "redis", "cache") if k != "redis" or redis is not None]
    print("== controltower: " + ", ".join(kinds), flush=True)
    targets = [start_controltower(s, upstream, kind) for kind in kinds]
    try:
        raw = run_group(s, upstream, [upstream, *targets])
        for target in targets:
            target.checks["traces_dropped"] = metric(target, "controltower_traces_dropped_total")
        if redis is not None:
            upstream.checks["redis_keys_after"] = int(redis.dbsize())
    finally:
        for target in targets:
            stop_target(target)
    checks = {t.key: t.checks for t in [upstream, *targets]}
    return {"raw": raw, "checks": checks}


def run_litellm(s: Settings, upstream: Target) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for kind in ("litellm", "litellm-governed", "litellm-cache"):
        print(f"== {kind}", flush=True)
        target = start_litellm(s, upstream, kind)
        try:
            raw.update(run_group(s, upstream, [target]))
        finally:
            stop_target(target)
        checks[kind] = target.checks
    return {"raw": raw, "checks": checks}


# --- metadata and main -------------------------------------------------------------------


def command_line() -> str:
    """How this run was started, for the docs."""
    return shlex.join([".venv/bin/python", "bench/governance_bench.py", *sys.argv[1:]])


def metadata(s: Settings) -> dict[str, Any]:
    found = versions()
    if git("status", "--porcelain", "--", "src"):
        found["controltower"] += " + uncommitted changes in src/"
    return {
        "command": command_line(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": found,
        "seconds": s.seconds,
        "reps": s.reps,
        "warmup_s": s.warmup,
        "hit_sample": s.hit_sample,
        "concurrency": list(CONCURRENCY),
        "controltower_config": {"budgets": BUDGETS, "rate_limits": RATE_LIMITS},
        "litellm_governed": {"deployment": LITELLM_LIMITS, "provider_budget": LITELLM_BUDGET},
    }


def run(args: argparse.Namespace, s: Settings, redis: Any | None) -> None:
    upstream = start_upstream(s)
    result = run_controltower(s, upstream, redis)
    if not args.skip_litellm:
        peer = run_litellm(s, upstream)
        result["raw"].update(peer["raw"])
        result["checks"].update(peer["checks"])
    meta = metadata(s)
    summary = summarize(result["raw"], result["checks"])
    save_json("governance", {"meta": meta, "summary": summary, "raw": result["raw"]})
    text = _governance_report.render(meta, summary)
    print("\n" + text)
    if not args.no_docs:
        _governance_report.write(DOC, text)
        print(f"updated {DOC.relative_to(ROOT)}")


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    ensure_wrk()
    if not args.skip_litellm:
        ensure_litellm()
    workdir = Path(tempfile.mkdtemp(prefix="governance-bench-"))
    s = settings_from(args, workdir)
    redis = redis_client()
    ok = False
    try:
        flush_redis(redis)
        run(args, s, redis)
        ok = True
    finally:
        for proc in reversed(s.procs):
            _procs.stop(proc)
        flush_redis(redis)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
