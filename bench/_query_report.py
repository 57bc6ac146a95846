"""Markdown of the query benchmark's results, for docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

START = "<!-- query-bench:start -->"
END = "<!-- query-bench:end -->"
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
PLAN_LINES = 14  # of each missed request's plans shown in the docs (all in bench/results/)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    align = ["---" if i < left else "---:" for i in range(len(header))]
    return [_row(header), _row(align), *(_row(r) for r in rows), ""]


def _meta_lines(meta: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    machine = meta["machine"]
    versions = ", ".join(run["database_version"] for run in runs)
    return [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['mem_gib']} GiB RAM, "
        f"Linux {machine['kernel']}",
        f"- Versions: controltower {meta['controltower']}, Python {meta['python']}, {versions}",
        f"- Method: `controltower serve` (one process, defaults) on 127.0.0.1 over the "
        f"dataset; one keep-alive httpx client at concurrency 1; each request "
        f"{meta['warmups']} times untimed, then {meta['reps']} times timed (a request "
        f"stops early after 60 s). Times are **round trips on localhost** in ms: an upper "
        f"bound of the server time (they include HTTP, JSON or HTML encoding and the client "
        f"reading the body). p95 is the nearest-rank 95th percentile. Requests are sent in "
        f"rounds (each once per round) so that noise from other processes spreads over all "
        f"of them. *store* is the median time of the same store calls made in the "
        f"benchmark's process (no HTTP, no encoding), 5 runs after one warm-up.",
        "",
    ]


def _dataset_lines(runs: list[dict[str, Any]]) -> list[str]:
    m = runs[0]["manifest"]
    plan = m["plan"]
    lines = [
        f"Dataset (same seed in every database): {m['traces']:,} traces and {m['spans']:,} "
        f"spans over {plan['days']} days: traces of ~10 spans (root, guardrails, embedding, "
        f"retrieval, rerank, 1-2 tools, 1-3 generations with chat messages of a few hundred "
        f"bytes), {m['users']:,} users with skewed activity, sessions of 1-9 traces, tags, "
        f"4 metadata keys, 6 models, {m['errors']:,} errors, {m['scores']:,} scores, and one "
        f"agent trace of {plan['big_spans']:,} spans. Written through "
        f"`open_store(url).write(records)` in batches of 2,000 whole traces; then PostgreSQL "
        f"gets a VACUUM ANALYZE (as autovacuum would) and SQLite no ANALYZE (the store never "
        f"runs one). The datasets are cached and reused by later runs.",
        "",
    ]
    rows = [
        [
            NAMES[run["db"]],
            f"{run['manifest']['load_s']:.0f}",
            f"{run['manifest']['spans_per_s']:,}",
            f"{run['manifest']['finish_s']:.0f}",
            f"{run['size_mib']:,.0f}",
            f"{run['migrate_s']:.1f}",
            _loadavg(run),
        ]
        for run in runs
    ]
    header = [
        "database",
        "load s",
        "spans/s",
        "ANALYZE / checkpoint s",
        "size MiB",
        "migrations at start s",
        "load average before / after timing",
    ]
    return lines + _table(header, rows)


def _loadavg(run: dict[str, Any]) -> str:
    before, after = run.get("loadavg") or (None, None)
    return "-" if before is None else f"{before:.2f} / {after:.2f}"


def _verdict(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    if result["status"] != 200:
        return f"**HTTP {result['status']}**"
    return "pass" if result["ok"] else "**MISS**"


def _results_table(runs: list[dict[str, Any]]) -> list[str]:
    by_db = {run["db"]: {r["key"]: r for r in run["results"]} for run in runs}
    queries: dict[str, dict[str, str]] = {}
    for run in runs:
        queries.update(run["queries"])
    header = ["request", "query", "rows", "target p95"]
    for run in runs:
        name = NAMES[run["db"]]
        header += [f"{name} p50", f"{name} p95", f"{name} store", name]
    rows = []
    for key, query in queries.items():
        first = next((by_db[run["db"]].get(key) for run in runs), None)
        row = [query["label"], f"`{query['url']}`", _count(first), f"{_target(first)}"]
        for run in runs:
            result = by_db[run["db"]].get(key)
            row += [_ms(result, "p50_ms"), _ms(result, "p95_ms"), _ms(result, "store_ms")]
            row.append(_verdict(result))
        rows.append(row)
    return _table(header, rows, left=2)


def _count(result: dict[str, Any] | None) -> str:
    return "-" if result is None or result["rows"] is None else str(result["rows"])


def _target(result: dict[str, Any] | None) -> str:
    return "-" if result is None else f"{result['target_ms']:.0f}"


def _ms(result: dict[str, Any] | None, key: str) -> str:
    value = None if result is None else result.get(key)
    return "-" if value is None else f"{value:.1f}"


def _miss_lines(runs: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for run in runs:
        results = {r["key"]: r for r in run["results"]}
        for entry in run["plans"]:
            result = results[entry["key"]]
            if result["ok"]:
                continue
            label = run["queries"][entry["key"]]["label"]
            lines += [
                f"**{NAMES[run['db']]} `{entry['key']}`** ({label}): "
                f"p95 {result['p95_ms']:.0f} ms over HTTP, store calls {entry['store_ms']:.0f} ms "
                f"in process ({entry['statements']} statements). Plan of its first statement:",
                "",
                "```",
                *_main_plan(entry)[:PLAN_LINES],
                "```",
                "",
            ]
    if not lines:
        return []
    return [
        "### Requests over target: plans",
        "",
        "Full SQL and plans of these requests are in the `query-plans-*.txt` file of the "
        "run in `bench/results/`.",
        "",
        *lines,
    ]


def _main_plan(entry: dict[str, Any]) -> list[str]:
    # the first SELECT is the list or group query; the rest are per-trace score look-ups
    plans = entry["plans"]
    return plans[0]["plan"] if plans else ["(no SELECT captured)"]


def render(meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """The section of docs/benchmarks.md."""
    spans = runs[0]["manifest"]["spans"]
    lines = [
        f"## Trace queries over {spans:,} spans",
        "",
        "Targets (issue 3): trace list and filtered queries p95 at most 300 ms server "
        "time; trace detail of a 5,000-span trace at most 500 ms. Session and user "
        "queries and the UI's pages are held to the same 300 ms (500 ms for the big "
        "trace's page).",
        "",
    ]
    lines += _meta_lines(meta, runs)
    lines += _dataset_lines(runs)
    lines += ["### Round-trip times (ms)", "", *_results_table(runs)]
    lines += _miss_lines(runs)
    return "\n".join(lines).rstrip() + "\n"
