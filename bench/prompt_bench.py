"""Prompt serving benchmark: a `prompt:` reference vs the same messages sent inline.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/prompt_bench.py              # in process and over HTTP
    .venv/bin/python bench/prompt_bench.py --quick      # smaller counts
    .venv/bin/python bench/prompt_bench.py --no-docs    # do not touch docs/benchmarks.md

In process: one Gateway over the mock provider with zero latency and a no-op trace sink.
Batches of N calls of `Gateway.chat` alternate between a body naming the prompt
(`prompt:refund-policy@production` with `variables`) and a body holding the same rendered
messages and parameters inline; per call = batch time / N, and the added time is the
median of the prompt batches minus the median of the inline ones. The resolver alone
(snapshot lookup, variable check, render with the compiled templates, body building) is
timed the same way.

Over HTTP: this file, run with `--serve PORT`, is the gateway (in-memory trace and prompt
stores, tracing on) in its own process; the prompt is pushed through the REST API, and
requests alternate one by one between the two bodies on one keep-alive connection; the
added time is the difference of the medians. The server is ended by its PID.
Results replace the section between the prompt-bench markers of docs/benchmarks.md; raw
data go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _env import DOC, PYTHON, RESULTS_DIR, git, machine
from _procs import free_port, spawn, stop, wait_until
from _report import replace_section

START = "<!-- prompt-bench:start -->"
END = "<!-- prompt-bench:end -->"
TARGET_US = 50.0
SETTINGS = """
models:
  - name: fast
    deployments:
      - provider: mock
        model: fast-model
"""
PROMPT: dict[str, Any] = {
    "model": "fast",
    "params": {"temperature": 0.2, "max_tokens": 400},
    "variables": {
        "question": {"type": "string", "required": True},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
    },
    "messages": [
        {
            "role": "system",
            "content": "You answer questions about our refund policy.\n"
            '{% if tier == "pro" %}Pro customers get 60 days.{% endif %}',
        },
        {"role": "user", "content": "{{ question }}"},
    ],
}
VARIABLES = {"question": "Can I get my money back after 40 days?", "tier": "pro"}
REFERENCE = "prompt:refund-policy@production"


def prompt_body() -> dict[str, Any]:
    """What a client sends to use the prompt."""
    return {"model": REFERENCE, "variables": dict(VARIABLES)}


def inline_body() -> dict[str, Any]:
    """The same request with the rendered messages and the version's parameters inline."""
    return {
        "model": "fast",
        "temperature": 0.2,
        "max_tokens": 400,
        "messages": [
            {
                "role": "system",
                "content": "You answer questions about our refund policy.\n"
                "Pro customers get 60 days.",
            },
            {"role": "user", "content": VARIABLES["question"]},
        ],
    }


# --- in process --------------------------------------------------------------------------


def _gateway() -> Any:
    from controltower.gateway import Gateway, PromptResolver
    from controltower.prompts import InMemoryPromptStore, content_from_dict
    from controltower.providers.mock import MockProvider
    from controltower.settings import parse_settings

    store = InMemoryPromptStore()
    store.create_version("refund-policy", content_from_dict(PROMPT), message=None, author=None)
    store.move_label("refund-policy", "production", 1, actor=None)
    prompts = PromptResolver(store)
    prompts.refresh()
    settings = parse_settings(SETTINGS, "bench.yaml", environ={})
    return Gateway(settings, MockProvider, lambda record: None, prompts)


async def _batch(call: Callable[[], Awaitable[Any]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


def _resolve_batch(gw: Any, n: int) -> float:
    from controltower.gateway import Caller

    caller, resolve = Caller(), gw.prompts.resolve
    start = time.perf_counter()
    for _ in range(n):
        resolve(prompt_body(), caller)
    return (time.perf_counter() - start) / n * 1e6


def _body_batch(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        prompt_body()
    return (time.perf_counter() - start) / n * 1e6


async def in_process(reps: int, n: int) -> dict[str, Any]:
    """Per-call µs of Gateway.chat with each body, and of the resolver alone."""
    from controltower.gateway import Caller

    gw = _gateway()
    caller = Caller()
    inline = lambda: gw.chat(inline_body(), caller)  # noqa: E731
    prompt = lambda: gw.chat(prompt_body(), caller)  # noqa: E731
    await _batch(inline, n)  # warm up: compile, import, allocate
    await _batch(prompt, n)
    times: dict[str, list[float]] = {"inline": [], "prompt": [], "resolve": []}
    for _ in range(reps):
        times["inline"].append(await _batch(inline, n))
        times["prompt"].append(await _batch(prompt, n))
        times["resolve"].append(_resolve_batch(gw, n) - _body_batch(n))
    return _summary(times, reps=reps, calls=n)


# --- over HTTP ---------------------------------------------------------------------------


def serve(port: int) -> None:
    """Run the gateway with in-memory stores (the `--serve` mode)."""
    import uvicorn

    from controltower.prompts import InMemoryPromptStore
    from controltower.providers.mock import MockProvider
    from controltower.server.app import GatewayApp
    from controltower.settings import parse_settings
    from controltower.store import InMemoryStore

    settings = parse_settings(SETTINGS, "bench.yaml", environ={})
    app = GatewayApp(settings, MockProvider, InMemoryStore(), prompt_store=InMemoryPromptStore())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def over_http(n: int) -> dict[str, Any]:
    """Median request latency of each body, one at a time on one connection."""
    import httpx

    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="prompt-bench-"))  # the server's log, if it fails
    proc = spawn("server", [PYTHON, __file__, "--serve", str(port)], logs)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            wait_until(proc, lambda: _ready(http), 20)
            _push(http)
            times: dict[str, list[float]] = {"inline": [], "prompt": []}
            for i in range(n + 200):
                for kind, body in (("inline", inline_body()), ("prompt", prompt_body())):
                    start = time.perf_counter()
                    answer = http.post("/v1/chat/completions", json=body)
                    elapsed = (time.perf_counter() - start) * 1e6
                    assert answer.status_code == 200, answer.text
                    if i >= 200:  # the first requests warm up the connection and caches
                        times[kind].append(elapsed)
    finally:
        stop(proc)
    return _summary(times, requests=n)


def _ready(http: Any) -> bool:
    try:
        return bool(http.get("/v1/models").status_code == 200)
    except Exception:  # not listening yet
        return False


def _push(http: Any) -> None:
    http.post("/api/prompts/refund-policy/versions", json=PROMPT).raise_for_status()
    http.put("/api/prompts/refund-policy/labels/production", json={"version": 1})
    deadline = time.monotonic() + 10
    while http.post("/v1/chat/completions", json=prompt_body()).status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not serve the prompt"
        time.sleep(0.05)


# --- report ------------------------------------------------------------------------------


def _summary(times: dict[str, list[float]], **facts: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(facts)
    for kind, values in times.items():
        values = sorted(values)
        out[kind] = {
            "median_us": statistics.median(values),
            "p90_us": values[int(len(values) * 0.9) - 1] if len(values) >= 10 else max(values),
        }
    out["added_us"] = out["prompt"]["median_us"] - out["inline"]["median_us"]
    return out


def report(results: dict[str, Any], argv: list[str]) -> str:
    """The markdown section of docs/benchmarks.md."""
    m, local, http = results["machine"], results["in_process"], results.get("http")
    added = local["added_us"]
    lines = [
        "## Serving a prompt reference",
        "",
        f"- Command: `python bench/prompt_bench.py{' ' + ' '.join(argv) if argv else ''}`",
        f"- Date: {results['date']}; controltower {results['git']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB RAM, Python "
        f"{m['python']}, load average at the end {m['loadavg_1m']}",
        "- Method: `prompt:refund-policy@production` with two variables (a Jinja2 "
        "conditional and a substitution, two messages) against the same rendered messages "
        "and parameters sent inline, mock provider with zero latency. In process: "
        f"{local['reps']} alternating batches of {local['calls']:,} `Gateway.chat` calls "
        "(no-op trace sink), per call = batch time / calls, medians. Over HTTP: the gateway "
        "in its own process (tracing on), requests alternating one by one on one keep-alive "
        "connection, medians.",
        "",
        "| measure | inline (µs) | prompt (µs) | added (µs, median) |",
        "| --- | ---: | ---: | ---: |",
        f"| in process, `Gateway.chat` | {local['inline']['median_us']:.1f} | "
        f"{local['prompt']['median_us']:.1f} | **{added:.1f}** |",
        f"| in process, the resolver alone | - | - | {local['resolve']['median_us']:.1f} |",
    ]
    if http is not None:
        lines.append(
            f"| over HTTP, {http['requests']:,} requests each | "
            f"{http['inline']['median_us']:.0f} | {http['prompt']['median_us']:.0f} | "
            f"{http['added_us']:.0f} |"
        )
    verdict = "met" if added <= TARGET_US else "NOT met"
    lines += ["", f"Target: at most {TARGET_US:.0f} µs added median in process ({verdict})."]
    if http is not None:
        over = "within" if http["added_us"] <= TARGET_US else "above"
        lines.append(
            f"Over HTTP, where the whole request is timed (client, server and its trace "
            f"writer on one 2-core machine), the added median is {http['added_us']:.0f} µs, "
            f"{over} {TARGET_US:.0f} µs; it includes parsing the variables and tracing them."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and write its section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    reps, calls, requests = (5, 2_000, 500) if args.quick else (21, 10_000, 3_000)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": (git("rev-parse", "--short", "HEAD") or "unknown") + " + working tree",
        "in_process": asyncio.run(in_process(reps, calls)),
    }
    if not args.no_http:
        results["http"] = over_http(requests)
    results["machine"] = machine()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (RESULTS_DIR / f"prompt-{stamp}.json").write_text(json.dumps(results, indent=2))
    text = report(results, sys.argv[1:])
    print(text)
    if not args.no_docs:
        replace_section(DOC, text, START, END)


if __name__ == "__main__":
    main()
