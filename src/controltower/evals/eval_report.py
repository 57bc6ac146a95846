"""What `controltower.evals.run` returns: the runs, their comparisons, the gate's verdict,
and assertions for tests that say which scorers and which items failed, and why."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controltower.domain.evaluation import EvalResult
from controltower.evals.compare import RunComparison
from controltower.evals.gate import PASSED, Gate, GateProblem
from controltower.evals.session import RunOutcome
from controltower.evals.spec import EvalSpec

SHOWN_ITEMS = 10  # failed items an assertion message lists (then "... and N more")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(slots=True)
class EvalReport:
    """An eval file's runs (one per matrix combination), their comparisons and the gate."""

    spec: EvalSpec
    runs: list[RunOutcome]
    comparisons: list[RunComparison | None]
    gate: Gate
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> list[dict[str, Any]]:
        """Each run's stored summary (per scorer: mean, n, passed, failed, threshold)."""
        return [outcome.run.summary for outcome in self.runs]

    @property
    def exit_code(self) -> int:
        """The exit code `controltower eval run` would end with (0, 1, 3 or 4)."""
        return self.gate.exit_code

    @property
    def passed(self) -> bool:
        """Whether the gate passed."""
        return self.exit_code == PASSED

    def failures(self) -> list[GateProblem]:
        """The problems that fail the gate (regressions first)."""
        return self.gate.failures()

    def assert_passed(self) -> None:
        """AssertionError naming each problem of the gate and the items that failed."""
        if self.passed:
            return
        lines = [f"eval {self.spec.name!r} failed its gate (exit {self.exit_code}):"]
        lines += [f"  {p.kind}: {p.message}" for p in self.failures()]
        lines += self._failed_items(None)
        raise AssertionError("\n".join(lines))

    def assert_score(self, scorer: str, op: str, value: float) -> None:
        """AssertionError unless every run's mean of `scorer` compares with `value` by `op`."""
        compare = _OPERATORS.get(op)
        if compare is None:
            raise ValueError(f"op {op!r}: use one of {', '.join(_OPERATORS)}")
        bad = []
        for outcome in self.runs:
            scorers = outcome.run.summary.get("scorers") or {}
            if scorer not in scorers:
                known = ", ".join(sorted(scorers)) or "none"
                raise AssertionError(
                    f"eval {self.spec.name!r} has no scorer {scorer!r}; its scorers: {known}"
                )
            mean = scorers[scorer].get("mean")
            if mean is None or not compare(mean, value):
                shown = "no score" if mean is None else f"{mean:.3f}"
                bad.append(f"  {_run_name(outcome)}: {scorer} = {shown}, expected {op} {value}")
        if bad:
            lines = [f"eval {self.spec.name!r}: {scorer} {op} {value} does not hold:", *bad]
            raise AssertionError("\n".join([*lines, *self._failed_items(scorer)]))

    def assert_no_regression(self) -> None:
        """AssertionError naming each regressed scorer and the items that got worse."""
        compared = [c for c in self.comparisons if c is not None]
        if not compared:
            raise AssertionError(
                f"eval {self.spec.name!r} was compared with no baseline; pass baseline= "
                "(a run id, 'last', 'branch:NAME', or a prompt label or #version)"
            )
        lines = []
        for comparison in compared:
            for regressed in comparison.regressions:
                lines.append(f"  {comparison.candidate.id}: {regressed.summary()}")
                lines += _worse_items(comparison, regressed.scorer)
        if lines:
            head = f"eval {self.spec.name!r} regressed against its baseline:"
            raise AssertionError("\n".join([head, *lines]))

    def _failed_items(self, scorer: str | None) -> list[str]:
        found = [
            line
            for outcome in self.runs
            for result in outcome.results
            for line in _failed(result, scorer, _run_name(outcome) if len(self.runs) > 1 else "")
        ]
        if not found:
            return []
        more = len(found) - SHOWN_ITEMS
        tail = [f"    ... and {more} more"] if more > 0 else []
        return ["  failed items:", *found[:SHOWN_ITEMS], *tail]


def _failed(result: EvalResult, scorer: str | None, run: str) -> list[str]:
    """A line per failed verdict (or target error) of one result."""
    where = f"{run} " if run else ""
    item = f"{where}{result.item_id}" + (f" (repeat {result.repeat})" if result.repeat else "")
    if result.status == "error":
        return [f"    {item}: the target failed: {result.error}"]
    lines = []
    for name, verdict in result.scores.items():
        if scorer is not None and name != scorer:
            continue
        if verdict.error:
            lines.append(f"    {item}: {name} could not score: {verdict.error}")
        elif verdict.passed is False:
            why = f": {verdict.reason}" if verdict.reason else ""
            lines.append(f"    {item}: {name} failed{why} (answer {_short(result.text)})")
    return lines


def _worse_items(comparison: RunComparison, scorer: str) -> list[str]:
    worse = [d for d in comparison.items if (d.change(scorer) or 0.0) < 0]
    lines = []
    for diff in worse[:SHOWN_ITEMS]:
        why = f": {diff.reasons[scorer]}" if diff.reasons.get(scorer) else ""
        lines.append(
            f"    {diff.item_id}: {diff.baseline[scorer]:.2f} -> {diff.candidate[scorer]:.2f}"
            f"{why} (answer {_short(diff.candidate_text)})"
        )
    if len(worse) > SHOWN_ITEMS:
        lines.append(f"    ... and {len(worse) - SHOWN_ITEMS} more")
    return lines


def _run_name(outcome: RunOutcome) -> str:
    values = outcome.run.record.get("matrix") or {}
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    return f"{outcome.run.id} ({shown})" if shown else outcome.run.id


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
