"""What the eval pages show, built from the eval store as plain data for the templates."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import orjson

from controltower.domain.dataset import DatasetItem
from controltower.domain.evaluation import EvalResult, EvalRun, RunStatus, Verdict
from controltower.errors import InvalidRequest, NotFound
from controltower.evals.compare import ItemDiff, compare_runs
from controltower.evals.stats import ScorerComparison
from controltower.evals.store import EvalStore
from controltower.store.eval_runs import MAX_RUNS
from controltower.store.serialize import us_to_iso
from controltower.web.eval_charts import ChartPoint, scorer_chart
from controltower.web.render import format_time

PAGE_SIZE = 100
MAX_PAGE = 1_000_000
RUNS_PAGE = 100  # runs per page of the runs list
SCAN_RUNS = 5_000  # runs a page with parameter filters reads at most
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
RUN_COLUMNS = ("created", "id", "name", "status", "branch")


@dataclass(frozen=True, slots=True)
class RunFilters:
    """The runs list's filters: eval, branch, status, parameters (`key=value`, all must
    hold), and the cursor of the page (the last run of the page before)."""

    name: str | None = None
    branch: str | None = None
    status: RunStatus | None = None
    params: tuple[tuple[str, str], ...] = ()
    before: tuple[int, str] | None = None

    @classmethod
    def of(cls, query: Mapping[str, str], param_values: list[str]) -> RunFilters:
        """From the query string; InvalidRequest names the bad parameter."""
        status = query.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(RUN_STATUSES)}, not {status[:40]!r}",
                param="status",
            )
        params = []
        for raw in param_values:
            key, sep, value = raw.partition("=")
            if not raw.strip():
                continue
            if not sep or not key.strip():
                raise InvalidRequest(
                    f"a parameter filter is key=value (e.g. model=fast), not {raw[:60]!r}",
                    param="param",
                )
            params.append((key.strip(), value.strip()))
        return cls(
            query.get("name") or None,
            query.get("branch") or None,
            status,  # type: ignore[arg-type]
            tuple(params),
            _cursor(query.get("before")),
        )

    def matches(self, run: EvalRun) -> bool:
        """Whether the run's parameters hold every `key=value` (values as the page shows them)."""
        return all(key in run.params and _text(run.params[key]) == v for key, v in self.params)


def runs_view(
    store: EvalStore, filters: RunFilters, sort: str | None, desc: bool
) -> dict[str, Any]:
    """One page of runs (newest first unless sorted), their parameter and scorer columns,
    and a chart per scorer across the page's runs."""
    runs, next_cursor, scanned = _runs_page(store, filters)
    params = sorted({key for run in runs for key in run.params})
    scorers = sorted({key for run in runs for key in (run.summary.get("scorers") or {})})
    rows = [_run_row(run) for run in runs]
    if sort:
        rows = _sorted(rows, _sort_key(sort, params, scorers), desc)
    oldest_first = list(reversed(runs))
    charts = [
        {"scorer": scorer, "svg": scorer_chart(scorer, _points(oldest_first, scorer))}
        for scorer in scorers
    ]
    recent = store.list_runs(limit=MAX_RUNS)
    return {
        "rows": rows,
        "params": params,
        "scorers": scorers,
        "charts": charts,
        "names": sorted({run.name for run in recent}),
        "branches": sorted({run.branch for run in recent if run.branch}),
        "statuses": RUN_STATUSES,
        "param_filters": [f"{key}={value}" for key, value in filters.params],
        "next_cursor": next_cursor,
        "scanned": scanned,
        "first_page": filters.before is None,
    }


def _runs_page(store: EvalStore, filters: RunFilters) -> tuple[list[EvalRun], str | None, int]:
    """The page's runs, the cursor of the next page (None on the last), and how many runs
    were read: parameter filters are applied here, reading at most SCAN_RUNS runs."""
    found: list[EvalRun] = []
    before, scanned = filters.before, 0
    while True:
        batch = store.list_runs(
            name=filters.name,
            branch=filters.branch,
            status=filters.status,
            before=before,
            limit=RUNS_PAGE + 1 if not filters.params else MAX_RUNS,
        )
        for run in batch:
            if len(found) == RUNS_PAGE:  # one more run matches: there is a next page
                return found, _cursor_of(found[-1]), scanned
            scanned += 1
            if filters.matches(run):
                found.append(run)
            if scanned >= SCAN_RUNS:
                return found, _cursor_of(run), scanned
        if not filters.params or len(batch) < MAX_RUNS:
            return found, None, scanned
        before = (batch[-1].created_us, batch[-1].id)


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if not raw:
        return None
    at, sep, run_id = raw.partition(":")
    if not sep or not (at.isascii() and at.isdigit() and len(at) <= 19) or not run_id:
        raise InvalidRequest(
            f"before must be a page cursor (TIME:RUN), not {raw[:60]!r}", param="before"
        )
    return int(at), run_id


def _cursor_of(run: EvalRun) -> str:
    return f"{run.created_us}:{run.id}"


def run_view(
    store: EvalStore,
    run_id: str,
    failed: bool,
    q: str | None,
    page: int,
    scorer: str | None = None,
) -> dict[str, Any]:
    """A run's record and summary, and one page of its results (maybe filtered). With
    `scorer`, "failed" means failed on that scorer, and the results are in its order,
    worst first (errors, then the lowest scores)."""
    run = store.get_run(run_id)
    results = store.run_results(run_id)
    items = _dataset_items(store, run)
    scorers = list(run.summary.get("scorers") or {}) or sorted(
        {name for r in results for name in r.scores}
    )
    if scorer and scorer not in scorers:
        known = ", ".join(scorers) or "none"
        raise InvalidRequest(
            f"this run has no scorer {scorer[:60]!r} (it has {known})", param="scorer"
        )
    rows = [_result_row(r, items.get(r.item_id)) for r in results]
    if failed:
        rows = [row for row in rows if _failed_on(row, scorer)]
    if scorer:
        rows.sort(key=lambda row: _worst_first(row, scorer))
    if q:
        needle = q.lower()
        rows = [row for row in rows if needle in row["haystack"]]
    start = (page - 1) * PAGE_SIZE
    return {
        "run": _run_row(run),
        "record": run.record,
        "summary": run.summary,
        "scorers": scorers,
        "rows": rows[start : start + PAGE_SIZE],
        "total": len(rows),
        "page": page,
        "has_next": start + PAGE_SIZE < len(rows),
        "items_found": bool(items),
        "previous": _previous(store, run),
    }


def compare_view(store: EvalStore, a: str | None, b: str | None) -> dict[str, Any]:
    """Run B against run A: each scorer's verdict, then the items, regressions first."""
    if not a or not b:
        raise InvalidRequest("give two runs to compare: ?a=RUN&b=RUN", param="a")
    base, cand = store.get_run(a), store.get_run(b)
    found = compare_runs(base, store.run_results(a), cand, store.run_results(b))
    regressed = found.regressed_items()
    improved = found.improved_items()
    moved = {i.item_id for i in regressed} | {i.item_id for i in improved}
    unchanged = [i for i in found.items if i.item_id not in moved]
    rows = [
        *(_diff_row(i, "regressed") for i in regressed),
        *(_diff_row(i, "improved") for i in improved),
        *(_diff_row(i, "unchanged") for i in unchanged),
    ]
    return {
        "a": _run_row(base),
        "b": _run_row(cand),
        "verdicts": [_verdict_row(c) for c in found.scorers],
        "scorers": [c.scorer for c in found.scorers],
        "rows": rows,
        "counts": {"regressed": len(regressed), "improved": len(improved)},
    }


def page_number(raw: str | None) -> int:
    """`?page=` as a number from 1; InvalidRequest for anything else."""
    if raw is None or raw == "":
        return 1
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 7) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(
            f"page must be a whole number from 1 to {MAX_PAGE}, not {raw[:40]!r}", param="page"
        )
    return int(raw)


def _run_row(run: EvalRun) -> dict[str, Any]:
    summary = run.summary.get("scorers") or {}
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "created_time": us_to_iso(run.created_us),
        "created_us": run.created_us,
        "branch": run.branch,
        "commit": run.commit,
        "params": {key: _text(value) for key, value in run.params.items()},
        "scores": {name: _scorer_cell(figures) for name, figures in summary.items()},
    }


def _scorer_cell(figures: dict[str, Any]) -> dict[str, Any]:
    judged = (figures.get("passed") or 0) + (figures.get("failed") or 0)
    return {
        "mean": figures.get("mean"),
        "pass_rate": figures["passed"] / judged if judged else None,
        "n": figures.get("n"),
        "errors": figures.get("errors") or 0,
        "threshold": figures.get("threshold"),
        "threshold_met": figures.get("threshold_met"),
    }


def _sort_key(sort: str, params: list[str], scorers: list[str]) -> Callable[[dict[str, Any]], Any]:
    if sort in RUN_COLUMNS:
        column = "created_us" if sort == "created" else sort
        return lambda row: row[column]
    kind, _, key = sort.partition(":")
    if kind == "param" and key in params:
        return lambda row: row["params"].get(key)
    if kind == "scorer" and key in scorers:
        return lambda row: (row["scores"].get(key) or {}).get("mean")
    raise InvalidRequest(f"cannot sort by {sort!r}", param="sort")


def _sorted(
    rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any], desc: bool
) -> list[dict[str, Any]]:
    # rows without a value go last whichever the direction
    present = [row for row in rows if key(row) is not None]
    present.sort(key=key, reverse=desc)
    return present + [row for row in rows if key(row) is None]


def _points(runs: list[EvalRun], scorer: str) -> list[ChartPoint]:
    points = []
    for run in runs:
        mean = ((run.summary.get("scorers") or {}).get(scorer) or {}).get("mean")
        if isinstance(mean, int | float):
            label = f"{run.id} · {run.name} ({format_time(us_to_iso(run.created_us))})"
            points.append(ChartPoint(run.id, float(mean), label))
    return points


def _previous(store: EvalStore, run: EvalRun) -> str | None:
    """The id of the run of the same eval made just before this one."""
    older = store.list_runs(name=run.name, before=(run.created_us, run.id), limit=1)
    return older[0].id if older else None


def _dataset_items(store: EvalStore, run: EvalRun) -> dict[str, DatasetItem]:
    dataset = run.record.get("dataset") or {}
    name, version = dataset.get("name"), dataset.get("version")
    if not isinstance(name, str) or not isinstance(version, int):
        return {}
    try:
        return {item.id: item for item in store.dataset_items(name, version)}
    except NotFound:
        return {}  # the run read a dataset file that was never pushed


def _result_row(result: EvalResult, item: DatasetItem | None) -> dict[str, Any]:
    scores = {name: _verdict_cell(v) for name, v in result.scores.items()}
    failed = result.status == "error" or any(
        v.passed is False or v.error is not None for v in result.scores.values()
    )
    given = None if item is None else (item.input if item.input is not None else item.variables)
    expected = None if item is None else item.expected
    output = result.text or ("" if result.output is None else _text(result.output))
    words = [result.item_id, output, _text(given), _text(expected), result.error or ""]
    words += [v.reason or "" for v in result.scores.values()]
    return {
        "item_id": result.item_id,
        "repeat": result.repeat,
        "status": result.status,
        "error": result.error,
        "input": given,
        "expected": expected,
        "output": output,
        "trace_id": result.trace_id,
        "scores": scores,
        "failed": failed,
        "haystack": "\n".join(words).lower(),
    }


def _failed_on(row: dict[str, Any], scorer: str | None) -> bool:
    if scorer is None:
        return bool(row["failed"])
    cell = row["scores"].get(scorer)
    return row["status"] == "error" or (
        cell is not None and (cell["passed"] is False or cell["error"] is not None)
    )


def _worst_first(row: dict[str, Any], scorer: str) -> tuple[int, float]:
    cell = row["scores"].get(scorer)
    if row["status"] == "error" or cell is None or cell["error"] is not None:
        return (0, 0.0)
    value = cell["value"]
    return (1, float(value)) if isinstance(value, int | float) else (2, 0.0)


def _verdict_cell(verdict: Verdict) -> dict[str, Any]:
    return {
        "value": verdict.value,
        "passed": verdict.passed,
        "reason": verdict.reason,
        "error": verdict.error,
    }


def _diff_row(diff: ItemDiff, kind: str) -> dict[str, Any]:
    names = sorted(set(diff.baseline) | set(diff.candidate))
    return {
        "kind": kind,
        "item_id": diff.item_id,
        "scores": {
            name: {
                "a": diff.baseline.get(name),
                "b": diff.candidate.get(name),
                "change": diff.change(name),
            }
            for name in names
        },
        "a_text": diff.baseline_text,
        "b_text": diff.candidate_text,
        "a_trace": diff.baseline_trace,
        "b_trace": diff.candidate_trace,
        "reasons": diff.reasons,
    }


def _verdict_row(c: ScorerComparison) -> dict[str, Any]:
    return {
        "scorer": c.scorer,
        "kind": c.kind,
        "method": c.method,
        "verdict": c.verdict,
        "paired": c.items,
        "baseline": c.baseline,
        "candidate": c.candidate,
        "difference": c.difference,
        "ci": (_finite(c.ci_low), _finite(c.ci_high)),
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "effect_size": _finite(c.effect_size),
        "mde": _finite(c.mde),
        "summary": c.summary(),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _text(value: Any) -> str:
    """A parameter or an item field as one line of text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()
