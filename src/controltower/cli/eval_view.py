"""Terminal views of evals with rich: the progress bar, a run's scores, a comparison."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from controltower.cli.render import safe
from controltower.domain.evaluation import EvalRun
from controltower.evals.compare import RunComparison
from controltower.evals.runner import Progress as RunProgress
from controltower.evals.session import RunOutcome
from controltower.evals.spec import EvalSpec

_err = Console(stderr=True)
_out = Console()
MAX_FAILED_SHOWN = 10


class EvalProgress:
    """A progress bar per run, with the running mean of each scorer and the ETA."""

    def __init__(self, spec: EvalSpec) -> None:
        self.spec = spec
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[scores]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=_err,
            transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> EvalProgress:
        self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def start(self, run: EvalRun, todo: int) -> None:
        """A new bar for a run with `todo` tasks."""
        label = ", ".join(f"{k}={v}" for k, v in (run.record.get("matrix") or {}).items())
        description = f"{escape(run.name)}{' [' + escape(label) + ']' if label else ''}"
        self._task = self._bar.add_task(description, total=todo, scores="")

    def update(self, progress: RunProgress) -> None:
        """Advance the bar and show the scores so far."""
        scores = "  ".join(f"{escape(k)} {v:.2f}" for k, v in progress.means().items())
        if progress.errors:
            scores += f"  [red]{progress.errors} error(s)[/red]"
        self._bar.update(self._task, completed=progress.done, scores=scores)


def print_outcome(outcome: RunOutcome, spec: EvalSpec | None, *, record: bool = False) -> None:
    """A run's scores per scorer, and its failed or errored items."""
    run = outcome.run
    summary = run.summary
    params = ", ".join(f"{k}={v}" for k, v in run.params.items() if not isinstance(v, dict))
    _out.print(
        f"[bold]{escape(run.id)}[/bold] {escape(run.name)} ({escape(params)}): "
        f"{run.status}, {summary.get('results', 0)} results, "
        f"{summary.get('target_errors', 0)} target error(s), cache "
        f"{(summary.get('cache') or {}).get('hits', 0)} hit(s)"
    )
    table = Table("scorer", "mean", "passed", "failed", "errors", "threshold")
    for name, f in (summary.get("scorers") or {}).items():
        mean = f.get("mean")
        threshold = ""
        if "threshold" in f:
            threshold = f"{f['threshold']} {'ok' if f.get('threshold_met') else 'MISSED'}"
        table.add_row(
            escape(name),
            "-" if mean is None else f"{mean:.3f}",
            str(f.get("passed")),
            str(f.get("failed")),
            str(f.get("errors")),
            threshold,
        )
    _out.print(table)
    if record:
        _out.print_json(data=run.record)
    _failed_items(outcome)


def _failed_items(outcome: RunOutcome) -> None:
    shown = 0
    for result in outcome.results:
        bad = [n for n, v in result.scores.items() if v.passed is False or v.error]
        if result.status == "ok" and not bad:
            continue
        shown += 1
        if shown > MAX_FAILED_SHOWN:
            continue
        what = result.error or ", ".join(
            f"{n}: {result.scores[n].error or result.scores[n].reason or 'failed'}" for n in bad
        )
        _out.print(
            f"  [red]x[/red] {escape(safe(result.item_id))}#{result.repeat}: "
            f"{escape(safe(what[:200]))}"
        )
    if shown > MAX_FAILED_SHOWN:
        _out.print(f"  ... and {shown - MAX_FAILED_SHOWN} more")


def print_comparison(comparison: RunComparison) -> None:
    """Each scorer's verdict (regressions first) with its statistics, and the worst items."""
    _out.print(f"compared with [bold]{escape(comparison.baseline.id)}[/bold]:")
    order = {"regressed": 0, "improved": 1, "unchanged": 2}
    for c in sorted(comparison.scorers, key=lambda c: order.get(c.verdict, 3)):
        colour = {"regressed": "red", "improved": "green"}.get(c.verdict, "default")
        _out.print(f"  [{colour}]{escape(c.summary())}[/{colour}]")
    for diff in comparison.regressed_items()[:MAX_FAILED_SHOWN]:
        moved = ", ".join(
            f"{s} {diff.baseline[s]:.2f}->{diff.candidate[s]:.2f}"
            for s in diff.candidate
            if (diff.change(s) or 0) < 0
        )
        _out.print(f"  [red]-[/red] {escape(safe(diff.item_id))}: {escape(moved)}")


def runs_table(runs: list[EvalRun]) -> None:
    """Runs as a table: parameters as columns, then each scorer's mean."""
    keys: list[str] = []
    scorers: list[str] = []
    for run in runs:
        keys += [k for k in run.params if k not in keys and not isinstance(run.params[k], dict)]
        scorers += [s for s in (run.summary.get("scorers") or {}) if s not in scorers]
    table = Table("run", "eval", "when", "status", *keys, *scorers)
    for run in runs:
        means = run.summary.get("scorers") or {}
        cells = [str(run.params.get(k, "")) for k in keys]
        cells += [_mean(means.get(s)) for s in scorers]
        when = datetime.fromtimestamp(run.created_us / 1e6, UTC).strftime("%m-%d %H:%M")
        table.add_row(run.id, escape(run.name), when, run.status, *map(escape, cells))
    _out.print(table)


def _mean(figures: dict[str, Any] | None) -> str:
    mean = (figures or {}).get("mean")
    return "-" if mean is None else f"{mean:.3f}"
