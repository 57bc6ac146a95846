"""The CI gate: whether the runs pass, and the exit code that says why not.

0 passed; 1 a regression or a missed threshold (as `--fail-on` asks); 2 an invalid eval
file or usage (the CLI's); 3 an infrastructure error (the target or the judges failed
on more than the eval's `max_error_rate`); 4 an empty run (nothing was scored).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controltower.evals.compare import RunComparison
from controltower.evals.session import RunOutcome
from controltower.evals.spec import EvalSpec

PASSED, FAILED, USAGE, INFRASTRUCTURE, EMPTY = 0, 1, 2, 3, 4
FAIL_ON = ("regression", "threshold")
ProblemKind = Literal["regression", "threshold", "infrastructure", "empty"]


@dataclass(frozen=True, slots=True)
class GateProblem:
    """One reason the gate fails, and where in the eval file it points."""

    kind: ProblemKind
    message: str
    run_id: str
    scorer: str | None = None
    line: int = 0


@dataclass(slots=True)
class Gate:
    """The verdict over an eval file's runs (and their comparisons with a baseline)."""

    spec: EvalSpec
    outcomes: list[RunOutcome]
    comparisons: list[RunComparison | None]
    fail_on: Collection[str] = FAIL_ON
    problems: list[GateProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        for outcome, comparison in zip(self.outcomes, self.comparisons, strict=True):
            self.problems += _problems(self.spec, outcome, comparison)

    @property
    def exit_code(self) -> int:
        """The process exit code for CI."""
        kinds = {p.kind for p in self.problems}
        if "empty" in kinds:
            return EMPTY
        if "infrastructure" in kinds:
            return INFRASTRUCTURE
        failing = {k for k in kinds if k in self.fail_on}
        return FAILED if failing else PASSED

    def failures(self) -> list[GateProblem]:
        """The problems that fail the gate (regressions first)."""
        code = self.exit_code
        if code in (EMPTY, INFRASTRUCTURE):
            kind = "empty" if code == EMPTY else "infrastructure"
            return [p for p in self.problems if p.kind == kind]
        order = {"regression": 0, "threshold": 1}
        chosen = [p for p in self.problems if p.kind in self.fail_on]
        return sorted(chosen, key=lambda p: order.get(p.kind, 2))


def _problems(
    spec: EvalSpec, outcome: RunOutcome, comparison: RunComparison | None
) -> list[GateProblem]:
    run, summary = outcome.run, outcome.run.summary
    scorers = summary.get("scorers") or {}
    rate = float(summary.get("error_rate") or 0.0)
    if outcome.results and rate > spec.max_error_rate:
        return [
            GateProblem(
                "infrastructure",
                f"{run.id}: {rate:.0%} of calls failed (target {summary.get('target_errors')}, "
                f"scorers {summary.get('scorer_errors')}), over max_error_rate "
                f"{spec.max_error_rate:.0%}",
                run.id,
                line=spec.line_of("target"),
            )
        ]
    if not outcome.results or not any(v.get("n") for v in scorers.values()):
        what = "no item" if not outcome.results else "no result could be scored"
        return [
            GateProblem(
                "empty",
                f"{run.id}: {what}; check the dataset and the target",
                run.id,
                line=spec.line_of("dataset"),
            )
        ]
    found = [_threshold(spec, run.id, name, figures) for name, figures in scorers.items()]
    problems = [p for p in found if p is not None]
    if comparison is not None:
        problems += [
            GateProblem(
                "regression",
                f"{run.id}: {c.summary()}",
                run.id,
                c.scorer,
                _scorer_line(spec, c.scorer),
            )
            for c in comparison.regressions
        ]
    return problems


def _threshold(
    spec: EvalSpec, run_id: str, name: str, figures: dict[str, object]
) -> GateProblem | None:
    if figures.get("threshold_met", True):
        return None
    mean = figures.get("mean")
    shown = f"{mean:.3f}" if isinstance(mean, float) else "no score"
    return GateProblem(
        "threshold",
        f"{run_id}: {name} scored {shown}, below its threshold {figures.get('threshold')}",
        run_id,
        name,
        spec.line_of("thresholds", name) or _scorer_line(spec, name),
    )


def _scorer_line(spec: EvalSpec, name: str) -> int:
    for i, scorer in enumerate(spec.scorers):
        if scorer.name == name:
            return scorer.line or spec.line_of("scorers", i)
    return spec.line_of("scorers")


def worst_exit(codes: Sequence[int]) -> int:
    """The exit code of several gates: the most severe."""
    rank = {EMPTY: 4, INFRASTRUCTURE: 3, FAILED: 2, PASSED: 0}
    return max(codes, key=lambda c: rank.get(c, 1), default=PASSED)
