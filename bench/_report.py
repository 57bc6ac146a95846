"""Markdown rendering of the gateway benchmark results and docs/benchmarks.md update."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

START = "<!-- gateway-bench:start -->"
END = "<!-- gateway-bench:end -->"
SOAK_START = "<!-- gateway-soak:start -->"
SOAK_END = "<!-- gateway-soak:end -->"
LABELS = {"direct": "direct", "controltower": "controltower", "litellm": "LiteLLM"}
GATEWAYS = ("controltower", "litellm")
INTRO = """# Benchmarks

Figures produced by the scripts in `bench/`; each section says which command
made it. The machines are noisy: compare the ratios and medians measured side
by side in the same run, not absolute figures across runs.

"""

Summary = dict[str, Any]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---:" if i else "---" for i in range(len(header))]
    return [_row(header), _row(align), *(_row(r) for r in rows), ""]


def _added(cell: dict[str, Any], direct: dict[str, Any], key: str) -> float | None:
    if not cell or not direct:
        return None
    return float(cell[key]) - float(direct[key])


def _latency_rows(by_c: dict[str, dict[str, Any]], targets: list[str]) -> list[list[str]]:
    rows = []
    gateways = [t for t in targets if t in GATEWAYS]
    for conc, cells in by_c.items():
        row = [conc]
        for key in ("p50_ms", "p99_ms"):
            row += [_fmt(cells.get(t, {}).get(key)) for t in targets]
        for gw in gateways:
            p50 = _added(cells.get(gw, {}), cells.get("direct", {}), "p50_ms")
            p99 = _added(cells.get(gw, {}), cells.get("direct", {}), "p99_ms")
            row.append(f"+{_fmt(p50)} / +{_fmt(p99)}")
        rows.append(row)
    return rows


def _latency_table(by_c: dict[str, dict[str, Any]], targets: list[str]) -> list[str]:
    labels = [LABELS[t] for t in targets]
    header = ["c", *(f"{n} p50" for n in labels), *(f"{n} p99" for n in labels)]
    header += [f"{LABELS[g]} added p50 / p99" for g in targets if g in GATEWAYS]
    return _table(header, _latency_rows(by_c, targets))


def _throughput_table(by_c: dict[str, dict[str, Any]], targets: list[str]) -> list[str]:
    labels = [LABELS[t] for t in targets]
    header = ["c", *(f"{n} req/s" for n in labels)]
    both = all(g in targets for g in GATEWAYS)
    if both:
        header.append("controltower / LiteLLM")
    header += [f"{n} errors (non-2xx + socket)" for n in labels]
    rows = []
    for conc, cells in by_c.items():
        row = [conc, *(_fmt(cells.get(t, {}).get("rps"), 0) for t in targets)]
        if both:
            ct, ll = cells.get("controltower", {}), cells.get("litellm", {})
            ratio = ct["rps"] / ll["rps"] if ct and ll and ll["rps"] else None
            row.append(f"{_fmt(ratio)}x")
        for t in targets:
            cell = cells.get(t, {})
            row.append(f"{cell.get('status_errors', '-')} + {cell.get('socket_errors', '-')}")
        rows.append(row)
    return _table(header, rows)


def _ttfb_table(ttfb: dict[str, dict[str, Any]], targets: list[str]) -> list[str]:
    direct = ttfb.get("direct", {}).get("median_ms")
    rows = []
    for t in targets:
        cell = ttfb.get(t, {})
        med = cell.get("median_ms")
        added = None if med is None or direct is None or t == "direct" else med - direct
        rows.append([
            LABELS[t], str(len(cell.get("samples_ms", []))), _fmt(med, 3),
            _fmt(cell.get("p90_ms"), 3), "-" if added is None else f"+{added:.3f}",
            str(cell.get("errors", "-")), str(cell.get("trace_headers", "-")),
        ])
    header = ["target", "requests", "median TTFB ms", "p90 ms", "added median ms", "errors",
              "x-controltower-trace-id"]
    return _table(header, rows)


def _traces(res: dict[str, Any]) -> str:
    if "traces_stored" not in res:
        return "-"
    return f"{res['traces_stored']} / {res['requests_completed']}"


def _resource_table(res: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        [
            LABELS[t], _fmt(r.get("ready_s")), _fmt(r.get("first_completion_s")),
            _fmt(r.get("idle_rss_mib"), 1), _fmt(r.get("after_rss_mib"), 1),
            _fmt(r.get("peak_rss_mib"), 1), str(r.get("procs", "-")), _traces(r),
        ]
        for t, r in res.items()
    ]
    header = [
        "gateway", "spawn → ready s (median)", "spawn → first completion s (median)",
        "idle RSS MiB",
        "RSS after load MiB", "peak RSS (VmHWM) MiB", "processes",
        "traces stored / requests answered",
    ]
    return _table(header, rows)


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    versions = meta["versions"]
    return [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']['nproc']} CPUs ({meta['machine']['cpu']}), "
        f"{meta['machine']['mem_gib']} GiB RAM, Linux {meta['machine']['kernel']}, "
        f"load average at the end {meta['machine']['loadavg_1m']}",
        f"- Versions: controltower {versions['controltower']}, "
        f"LiteLLM {versions['litellm']}, Python {versions['python']}, {versions['wrk']}",
        f"- Method: fake upstream `bench/upstream.py` (1 process, answers at once), "
        f"wrk closed loop on 127.0.0.1, {meta['seconds']:g} s runs x {meta['reps']} "
        f"repetitions, figures are medians of the repetitions (errors are summed). "
        f"Streams are 22 SSE events + `[DONE]`. Errors: non-2xx responses (counted in the "
        f"Lua `response` hook) + socket errors (connect, read, write, timeout). Latencies in ms.",
        "",
    ]


def render(meta: dict[str, Any], summary: Summary) -> str:
    targets = summary["targets"]
    lines = ["## Gateway overhead", "", *_meta_lines(meta)]
    for mode, by_c in summary["modes"].items():
        lines += [f"### {mode}: latency (ms)", "", *_latency_table(by_c, targets)]
        lines += [f"### {mode}: throughput", "", *_throughput_table(by_c, targets)]
    lines += ["### Streaming time to first event", "",
              f"{meta['ttfb_requests']} sequential streaming requests on one keep-alive "
              "connection per target; TTFB is the time until the first `data:` event.", ""]
    lines += _ttfb_table(summary["ttfb"], targets)
    if summary["resources"]:
        lines += ["### Memory and start-up", "", *_resource_table(summary["resources"])]
    return "\n".join(lines).rstrip() + "\n"


def render_soak(meta: dict[str, Any], soak: dict[str, Any]) -> str:
    samples = " → ".join(f"{s['rss_mib']:.0f}" for s in soak["samples"])
    return "\n".join([
        "## Gateway soak (controltower)", "",
        f"- Command: `{meta['command']}`", f"- Date: {meta['date']}",
        f"- Constant load at concurrency 16 (non-streaming) for {soak['seconds']} s: "
        f"{soak['wrk']['rps']:.0f} req/s, errors {soak['wrk']['status_errors']} + "
        f"{soak['wrk']['socket_errors']}.",
        f"- RSS MiB: start {soak['start_mib']:.1f}, end {soak['end_mib']:.1f}, "
        f"max {soak['max_mib']:.1f} (samples every 10 s: {samples}).", "",
    ])


def replace_section(doc: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace only the text between the markers; create the file or markers if missing."""
    text = doc.read_text() if doc.exists() else INTRO
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
