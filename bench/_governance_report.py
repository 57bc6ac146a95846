"""Markdown of the governance benchmark's results, and its section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _report import _fmt, _table, replace_section

START = "<!-- governance-bench:start -->"
END = "<!-- governance-bench:end -->"
AFTER = "<!-- gateway-profile:end -->"  # the section goes after the profile and its notes
TARGET_ADDED_US = {"checks": 20.0, "redis": 250.0}
TARGET_RATIO = 25.0
TARGET_HIT_ADDED_MS = 0.3
LABELS = {
    "direct": "direct to the upstream",
    "plain": "controltower, master key only",
    "checks": "controltower, API key + budget + rate limit in memory",
    "redis": "controltower, API key + budget + rate limit in Redis",
    "cache": "controltower, cache hit",
    "litellm": "LiteLLM, master key only",
    "litellm-governed": "LiteLLM, master key + deployment rpm/tpm + provider budget",
    "litellm-cache": "LiteLLM, local cache hit",
}
LITELLM_SET = (
    "LiteLLM runs without a database, as offline here it must: `general_settings.master_key`; "
    "`rpm: 100000000` and `tpm: 10000000000` on the deployment, enforced by the router's "
    "`routing_strategy: usage-based-routing-v2` (in-memory counters), and "
    "`router_settings.provider_budget_config` `openai: {budget_limit: 1000000, "
    "time_period: 30d}` (in memory), both seen to refuse or hold back calls when set low "
    "(checked by hand with LiteLLM 1.108.7: `rpm: 3` held the 4th call of a minute until the "
    "next, a $0.00002 provider budget answered the 3rd call 429); and "
    "`litellm_settings.max_budget: 1000000` with `budget_duration: 30d`, which it "
    "accepts but does not enforce without a database (its docs: it fails open)."
)
LITELLM_UNSET = (
    "Not configurable without LiteLLM's Prisma database: virtual keys (`POST /key/generate` "
    "answers 500, `No module named 'prisma'`; the Prisma client's `prisma generate` downloads "
    "engine binaries, which cannot be fetched here), and so per-key budgets (`max_budget`, "
    "`budget_duration` on a key), per-key `rpm_limit` / `tpm_limit`, and team, user and "
    "customer budgets. The calls authenticate with the master key, which no per-key limit "
    "charges; LiteLLM's limits here are per deployment and per provider, controltower's per key."
)

Cells = dict[str, dict[str, dict[str, Any]]]


def _cell(cells: Cells, key: str, conc: int) -> dict[str, Any]:
    return cells.get(key, {}).get(str(conc), {})


def _value(cells: Cells, key: str, conc: int, name: str) -> float | None:
    value = _cell(cells, key, conc).get(name)
    return None if value is None else float(value)


def _diff(a: float | None, b: float | None, scale: float = 1.0) -> float | None:
    return None if a is None or b is None else (a - b) * scale


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _signed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _errors(cells: Cells, key: str) -> str:
    found = [c for c in cells.get(key, {}).values()]
    if not found:
        return "-"
    return f"{sum(c['status_errors'] for c in found)} + {sum(c['socket_errors'] for c in found)}"


def _met(value: float | None, limit: float, at_most: bool = True) -> str:
    if value is None:
        return "not measured"
    return "met" if (value <= limit if at_most else value >= limit) else "**not met**"


def added_us(cells: Cells, key: str) -> float | None:
    """Added p50 at concurrency 1 over controltower without checks, in µs."""
    return _diff(_value(cells, key, 1, "p50_ms"), _value(cells, "plain", 1, "p50_ms"), 1000)


def throughput_ratio(cells: Cells, key: str = "checks") -> float | None:
    return _ratio(_value(cells, key, 16, "rps"), _value(cells, "litellm-governed", 16, "rps"))


def hit_added_ms(cells: Cells, key: str = "cache") -> float | None:
    return _diff(_value(cells, key, 1, "p50_ms"), _value(cells, "direct", 1, "p50_ms"))


def _checks_table(cells: Cells) -> list[str]:
    rows = []
    for key in ("direct", "plain", "checks", "redis"):
        if key not in cells:
            continue
        limit = TARGET_ADDED_US.get(key)
        added = added_us(cells, key) if limit else None
        rows.append(
            [
                LABELS[key],
                _fmt(_value(cells, key, 1, "p50_ms"), 3),
                _fmt(_value(cells, key, 1, "p99_ms"), 3),
                _signed(added, 0) if limit else "-",
                f"≤ {limit:g} µs: {_met(added, limit)}" if limit else "-",
                _fmt(_value(cells, key, 16, "rps"), 0),
                _fmt(_value(cells, key, 16, "p50_ms"), 3),
                _errors(cells, key),
            ]
        )
    header = [
        "target",
        "c=1 p50 ms",
        "c=1 p99 ms",
        "added c=1 p50 vs plain µs",
        "target",
        "c=16 req/s",
        "c=16 p50 ms",
        "errors (non-2xx + socket)",
    ]
    return _table(header, rows)


def _peer_table(cells: Cells) -> list[str]:
    rows = []
    for key in ("checks", "redis", "litellm", "litellm-governed"):
        if key not in cells:
            continue
        ratio = _ratio(_value(cells, key, 16, "rps"), _value(cells, "litellm-governed", 16, "rps"))
        rows.append(
            [
                LABELS[key],
                _fmt(_value(cells, key, 16, "rps"), 0),
                "-" if key.startswith("litellm") else f"{_fmt(ratio)}x",
                _fmt(_value(cells, key, 16, "p50_ms"), 3),
                _fmt(_value(cells, key, 1, "p50_ms"), 3),
                _errors(cells, key),
            ]
        )
    header = [
        "gateway",
        "c=16 req/s",
        "/ LiteLLM governed",
        "c=16 p50 ms",
        "c=1 p50 ms",
        "errors (non-2xx + socket)",
    ]
    return _table(header, rows)


def _upstream_calls(cells: Cells, key: str) -> str:
    found = [c["upstream_calls"] for c in cells.get(key, {}).values()]
    requests = [c["requests"] for c in cells.get(key, {}).values()]
    return f"{sum(found)} / {sum(requests)}" if found else "-"


def _cache_table(cells: Cells, checks: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for key in ("direct", "plain", "cache", "litellm", "litellm-cache"):
        if key not in cells:
            continue
        added = None if key == "direct" else hit_added_ms(cells, key)
        rows.append(
            [
                LABELS[key].replace("master key only", "no cache"),
                _fmt(_value(cells, key, 1, "p50_ms"), 3),
                _signed(added, 3),
                _fmt(_value(cells, key, 16, "rps"), 0),
                checks.get(key, {}).get("hits_sampled", "-"),
                _upstream_calls(cells, key),
                _errors(cells, key),
            ]
        )
    header = [
        "target",
        "c=1 p50 ms",
        "added c=1 p50 vs direct ms",
        "c=16 req/s",
        "hits in the sample",
        "upstream calls / requests (measured runs)",
        "errors (non-2xx + socket)",
    ]
    return _table(header, rows)


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    versions, box = meta["versions"], meta["machine"]
    return [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {box['nproc']} CPUs ({box['cpu']}), {box['mem_gib']} GiB RAM, Linux "
        f"{box['kernel']}, load average at the end {box['loadavg_1m']}",
        f"- Versions: controltower {versions['controltower']}, LiteLLM {versions['litellm']}, "
        f"Python {versions['python']}, {versions['wrk']}",
        "- Method: fake upstream `bench/upstream.py` (1 process, answers at once); each "
        "`controltower serve` one process tracing to its own SQLite file, all four running "
        "during the measurements, their runs interleaved in an order rotated per repetition; "
        "LiteLLM one worker, no database, each configuration alone after them. wrk closed loop "
        "on 127.0.0.1, non-streaming chat requests with `max_tokens: 64`, "
        f"{meta['seconds']:g} s runs x {meta['reps']} repetitions after a "
        f"{meta['warmup_s']:g} s warm-up at c=16; figures are medians of the repetitions "
        "(errors and upstream calls are summed). Budget `{scope: key, usd: 1000000}`, rate "
        "limit `{scope: key, rpm: 100000000, tpm: 10000000000}`, Redis "
        "`redis://127.0.0.1:6379/13` (flushed before and after).",
        "",
    ]


def _verdict_lines(cells: Cells) -> list[str]:
    in_process, redis = added_us(cells, "checks"), added_us(cells, "redis")
    ratio, hit = throughput_ratio(cells), hit_added_ms(cells)
    hit_rps = _value(cells, "cache", 16, "rps")
    return [
        f"- Checks added p50 at c=1: {_signed(in_process, 0)} µs in process "
        f"(target ≤ 20 µs: {_met(in_process, 20)}), {_signed(redis, 0)} µs with Redis "
        f"(target ≤ 250 µs: {_met(redis, 250)}).",
        f"- Throughput at c=16 with keys, budget and rate limit: {_fmt(ratio)}x LiteLLM's with "
        f"its offline governance (target ≥ 25x: {_met(ratio, TARGET_RATIO, at_most=False)}).",
        f"- Cache hit added p50 vs direct at c=1: {_signed(hit, 3)} ms (target ≤ 0.3 ms: "
        f"{_met(hit, TARGET_HIT_ADDED_MS)}); hits at c=16: {_fmt(hit_rps, 0)} req/s.",
        "",
    ]


def _check_lines(checks: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for key in ("plain", "checks", "redis", "cache"):
        found = checks.get(key)
        if not found:
            continue
        parts = [
            f"traces stored / requests answered {found.get('traces_stored', '-')} / "
            f"{found.get('requests_answered', '-')}",
            f"traces dropped {_fmt(found.get('traces_dropped'), 0)}",
        ]
        if "ratelimit_limit_requests" in found:
            parts.append(f"`x-ratelimit-limit-requests: {found['ratelimit_limit_requests']}`")
        lines.append(f"- {LABELS[key]}: " + ", ".join(parts) + ".")
    redis_keys = checks.get("direct", {}).get("redis_keys_after")
    if redis_keys is not None:
        lines.append(f"- Redis db 13 held {redis_keys} keys after the runs (counters in Redis).")
    return [*lines, ""]


def render(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    cells, checks = summary["cells"], summary["checks"]
    lines = ["## Governance: keys, budgets, rate limits and the exact cache", ""]
    lines += [*_meta_lines(meta), *_verdict_lines(cells)]
    lines += ["### Cost of the checks (non-streaming)", "", *_checks_table(cells)]
    if "litellm-governed" in cells:
        lines += ["### Throughput with governance on, against LiteLLM (c=16)", ""]
        lines += [*_peer_table(cells), LITELLM_SET, "", LITELLM_UNSET, ""]
    lines += [
        "### Exact cache: the same request again and again",
        "",
        "After one warm-up miss every call of the cache targets is a hit: the sample "
        "column counts `x-controltower-cache: HIT` (LiteLLM: `x-litellm-cache-key`) on "
        "sequential calls after the warm-up, the upstream column the calls that reached "
        "the upstream during the measured runs.",
        "",
        *_cache_table(cells, checks),
    ]
    lines += ["### Checks of the set-up", "", *_check_lines(checks)]
    return "\n".join(lines).rstrip() + "\n"


def write(doc: Path, body: str) -> None:
    """Replace the section; the first time, put its markers after the gateway profile's."""
    text = doc.read_text() if doc.exists() else ""
    if START not in text and AFTER in text:
        cut = text.index(AFTER) + len(AFTER)
        following = text.find("<!-- ", cut)  # the next section: the profile's notes stay
        cut = following if following != -1 else len(text)
        text = text[:cut].rstrip() + f"\n\n{START}\n{END}\n\n" + text[cut:].lstrip()
        doc.write_text(text)
    replace_section(doc, body, START, END)
