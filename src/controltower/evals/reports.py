"""What a gate writes for CI: JUnit XML, a Markdown PR comment, JSON, GitHub annotations.

JUnit keeps assertion failures apart from errors: an item a scorer failed, a missed
threshold or a regression is a `failure`; an item the target or a scorer could not
answer is an `error`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from controltower.domain.evaluation import EvalResult
from controltower.evals.compare import RunComparison
from controltower.evals.gate import Gate
from controltower.evals.session import RunOutcome

MAX_ITEMS_SHOWN = 10
_TEXT = 160


def junit_xml(gate: Gate) -> bytes:
    """One testsuite per run: a testcase per item, per threshold and per comparison."""
    suites = ET.Element("testsuites", name=gate.spec.name)
    for outcome, comparison in zip(gate.outcomes, gate.comparisons, strict=True):
        suites.append(_suite(gate, outcome, comparison))
    ET.indent(suites)
    written: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return written


def _suite(gate: Gate, outcome: RunOutcome, comparison: RunComparison | None) -> ET.Element:
    run = outcome.run
    suite = ET.Element("testsuite", name=f"{gate.spec.name} [{_params(run.params)}]")
    counts = {"tests": 0, "failures": 0, "errors": 0}
    failing = {p.scorer for p in gate.failures() if p.run_id == run.id and p.scorer}
    for item_id, results in _by_item(outcome.results).items():
        name, kind, message = _item_case(item_id, results, failing)
        case = _add(suite, counts, name, kind, message)
        notes = _failed_checks(results)
        if notes and kind is None:  # failed checks of a scorer that passes the gate
            ET.SubElement(case, "system-out").text = notes
    for problem in gate.problems:
        if problem.run_id == run.id and problem.kind != "regression":
            _add(
                suite,
                counts,
                f"{problem.kind}: {problem.scorer or run.id}",
                "failure",
                problem.message,
            )
    for name, figures in (run.summary.get("scorers") or {}).items():
        if "threshold" in figures and figures.get("threshold_met"):
            _add(suite, counts, f"threshold: {name}", None, "")
    for c in comparison.scorers if comparison else ():
        kind = "failure" if c.verdict == "regressed" else None
        _add(suite, counts, f"no regression: {c.scorer}", kind, c.summary())
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def _item_case(
    item_id: str, results: list[EvalResult], failing: set[str]
) -> tuple[str, str | None, str]:
    """An item is an error when it could not be answered or scored, a failure when a
    scorer that fails the gate failed on it; other failed checks are noted, since the
    gate (not one noisy item) decides."""
    errors = [r.error for r in results if r.status == "error"]
    errors += [f"{n}: {v.error}" for r in results for n, v in r.scores.items() if v.error]
    if errors:
        return f"item {item_id}", "error", "; ".join(str(e) for e in errors)[:2000]
    failed = _failed_checks(results, failing)
    if failed:
        return f"item {item_id}", "failure", failed
    return f"item {item_id}", None, ""


def _failed_checks(results: list[EvalResult], only: set[str] | None = None) -> str:
    failed = [
        f"{name} (repeat {r.repeat}): {v.reason or 'failed'}"
        for r in results
        for name, v in r.scores.items()
        if v.passed is False and (only is None or name in only)
    ]
    return "; ".join(failed)[:2000]


def _add(
    suite: ET.Element, counts: dict[str, int], name: str, kind: str | None, message: str
) -> ET.Element:
    case = ET.SubElement(suite, "testcase", name=name, classname=suite.get("name", ""))
    counts["tests"] += 1
    if kind is not None:
        element = ET.SubElement(case, kind, message=message[:500])
        element.text = message
        counts["failures" if kind == "failure" else "errors"] += 1
    return case


def _by_item(results: Sequence[EvalResult]) -> dict[str, list[EvalResult]]:
    out: dict[str, list[EvalResult]] = {}
    for result in results:
        out.setdefault(result.item_id, []).append(result)
    return out


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, dict))


def markdown(gate: Gate, trace_url: str | None = None) -> str:
    """The PR comment: the verdict, a table per run (regressions first), the worst items."""
    code = gate.exit_code
    head = {0: "passed", 1: "failed", 3: "could not run", 4: "ran nothing"}.get(code, "failed")
    lines = [f"## Eval `{gate.spec.name}`: {head}", ""]
    for problem in gate.failures():
        lines.append(f"- **{problem.kind}**: {_md(problem.message)}")
    for outcome, comparison in zip(gate.outcomes, gate.comparisons, strict=True):
        lines += ["", f"### Run `{outcome.run.id}` ({_md(_params(outcome.run.params))})", ""]
        lines += _table(outcome, comparison)
        if comparison is not None:
            lines += _items_section(comparison, trace_url)
    return "\n".join(lines) + "\n"


def _table(outcome: RunOutcome, comparison: RunComparison | None) -> list[str]:
    scorers = outcome.run.summary.get("scorers") or {}
    if comparison is None:
        rows = ["| scorer | mean | passed | errors | threshold |", "|---|---|---|---|---|"]
        for name, f in scorers.items():
            rows.append(
                f"| {name} | {_num(f.get('mean'))} | {f.get('passed', 0)} | "
                f"{f.get('errors', 0)} | {_threshold(f)} |"
            )
        return rows
    rows = [
        "| scorer | baseline | candidate | change | 95% CI | p (Holm) | MDE | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {"regressed": 0, "improved": 1, "unchanged": 2}
    for c in sorted(comparison.scorers, key=lambda c: order.get(c.verdict, 3)):
        mark = {"regressed": "🔴 regressed", "improved": "🟢 improved"}.get(c.verdict, "unchanged")
        rows.append(
            f"| {c.scorer} | {c.baseline:.3f} | {c.candidate:.3f} | {c.difference:+.3f} | "
            f"{c.ci_low:+.3f}..{c.ci_high:+.3f} | {c.p_value:.3g} ({c.p_adjusted:.3g}) | "
            f"{c.mde:.3f} | {mark} |"
        )
    return rows


def _items_section(comparison: RunComparison, trace_url: str | None) -> list[str]:
    regressed = comparison.regressed_items()
    if not regressed:
        return []
    lines = ["", f"**Items that got worse** ({len(regressed)}):", ""]
    for diff in regressed[:MAX_ITEMS_SHOWN]:
        changes = ", ".join(
            f"{s} {diff.baseline[s]:.2f}→{diff.candidate[s]:.2f}"
            for s in diff.candidate
            if (diff.change(s) or 0) < 0
        )
        link = _link(trace_url, diff.candidate_trace)
        lines.append(
            f"- `{_md(diff.item_id)}`: {changes}{link} — {_md(diff.candidate_text[:_TEXT])}"
        )
    if len(regressed) > MAX_ITEMS_SHOWN:
        lines.append(f"- … and {len(regressed) - MAX_ITEMS_SHOWN} more")
    return lines


def _link(trace_url: str | None, trace_id: str | None) -> str:
    if not trace_url or not trace_id:
        return ""
    return f" ([trace]({trace_url.rstrip('/')}/traces/{trace_id}))"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _threshold(figures: dict[str, Any]) -> str:
    if "threshold" not in figures:
        return ""
    return f"{figures['threshold']} {'✅' if figures.get('threshold_met') else '❌'}"


def json_report(gate: Gate) -> bytes:
    """Every run's record, summary and comparison, and the gate's verdict."""
    runs = []
    for outcome, comparison in zip(gate.outcomes, gate.comparisons, strict=True):
        run = outcome.run
        runs.append(
            {
                "id": run.id,
                "status": run.status,
                "params": run.params,
                "record": run.record,
                "summary": run.summary,
                "comparison": comparison.as_json() if comparison else None,
            }
        )
    body = {
        "eval": gate.spec.name,
        "exit_code": gate.exit_code,
        "problems": [
            {
                "kind": p.kind,
                "message": p.message,
                "run": p.run_id,
                "scorer": p.scorer,
                "line": p.line,
            }
            for p in gate.problems
        ],
        "runs": runs,
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2, default=str)


def github_annotations(gate: Gate, dataset_lines: dict[str, int] | None = None) -> list[str]:
    """`::error` lines that point at the eval file's line and the dataset's rows."""
    source = gate.spec.source
    out = []
    for problem in gate.failures():
        where = (
            f"file={_gh_prop(source)},line={problem.line}"
            if problem.line
            else f"file={_gh_prop(source)}"
        )
        out.append(f"::error {where},title=eval {problem.kind}::{_gh(problem.message)}")
    dataset = gate.spec.dataset
    if isinstance(dataset, str) and dataset_lines:
        path = str(Path(source).parent / dataset) if not Path(dataset).is_absolute() else dataset
        for comparison in gate.comparisons:
            for diff in comparison.regressed_items()[:MAX_ITEMS_SHOWN] if comparison else ():
                line = dataset_lines.get(diff.item_id)
                if line:
                    out.append(
                        f"::error file={_gh_prop(path)},line={line},title=eval item "
                        f"regressed::{_gh(diff.item_id)} got worse"
                    )
    return out


def _gh(text: str) -> str:
    """A workflow command's message, escaped as GitHub reads it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    """A workflow command's property (file, title), escaped as GitHub reads it."""
    return _gh(text).replace(":", "%3A").replace(",", "%2C")
