"""A candidate run against a baseline run: per scorer a paired verdict, per item the diff.

The verdicts come from `controltower.evals.stats` (McNemar exact for pass/fail with one
sample per item, a sign-flip test on per-item means otherwise; repeats clustered by
item; Holm across the scorers). The item diff lists the items whose scores moved, the
regressions first.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controltower.domain.evaluation import EvalResult, EvalRun
from controltower.evals.power import ALPHA
from controltower.evals.scoring import ScoreKind
from controltower.evals.stats import ScorerComparison, ScorerValues, compare_scorers


@dataclass(frozen=True, slots=True)
class ItemDiff:
    """How one item's scores moved between the runs (means over its repeats)."""

    item_id: str
    baseline: dict[str, float]
    candidate: dict[str, float]
    baseline_text: str = ""
    candidate_text: str = ""
    baseline_trace: str | None = None
    candidate_trace: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # the candidate's judge reasons

    def change(self, scorer: str) -> float | None:
        """Candidate minus baseline for one scorer (None when either side has no value)."""
        if scorer in self.baseline and scorer in self.candidate:
            return self.candidate[scorer] - self.baseline[scorer]
        return None

    @property
    def worst(self) -> float:
        """The largest drop over the scorers (0 when none dropped)."""
        changes = [c for c in (self.change(s) for s in self.candidate) if c is not None]
        return min([0.0, *changes])


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Every scorer's verdict and the item diff of a candidate against a baseline."""

    baseline: EvalRun
    candidate: EvalRun
    scorers: list[ScorerComparison]
    items: list[ItemDiff]

    @property
    def regressions(self) -> list[ScorerComparison]:
        """The scorers that regressed (after Holm)."""
        return [c for c in self.scorers if c.verdict == "regressed"]

    def regressed_items(self) -> list[ItemDiff]:
        """Items whose scores dropped, worst first."""
        return sorted((i for i in self.items if i.worst < 0), key=lambda i: (i.worst, i.item_id))

    def improved_items(self) -> list[ItemDiff]:
        """Items whose scores rose and none dropped."""
        return [
            i
            for i in self.items
            if i.worst == 0 and any((i.change(s) or 0) > 0 for s in i.candidate)
        ]

    def as_json(self) -> dict[str, Any]:
        """The comparison as the JSON report holds it."""
        return {
            "baseline": self.baseline.id,
            "candidate": self.candidate.id,
            "scorers": [_comparison_json(c) for c in self.scorers],
            "regressed_items": [_diff_json(i) for i in self.regressed_items()],
            "improved_items": [i.item_id for i in self.improved_items()],
        }


def compare_runs(
    baseline: EvalRun,
    baseline_results: Sequence[EvalResult],
    candidate: EvalRun,
    candidate_results: Sequence[EvalResult],
    *,
    alpha: float = ALPHA,
    kinds: dict[str, ScoreKind] | None = None,
) -> RunComparison:
    """Compare the scorers both runs have, pairing their results by item id."""
    kinds = kinds or _kinds(candidate, baseline)
    base = _values(baseline_results)
    cand = _values(candidate_results)
    names = [n for n in kinds if n in base or n in cand]
    inputs = [
        ScorerValues(name, kinds[name], base.get(name, {}), cand.get(name, {})) for name in names
    ]
    verdicts = compare_scorers(inputs, alpha=alpha) if inputs else []
    return RunComparison(baseline, candidate, verdicts, _diffs(baseline_results, candidate_results))


def _kinds(*runs: EvalRun) -> dict[str, ScoreKind]:
    found: dict[str, ScoreKind] = {}
    for run in runs:
        for name, figures in (run.summary.get("scorers") or {}).items():
            kind = figures.get("kind")
            if kind in ("binary", "numeric"):
                found.setdefault(name, kind)
    return found


def _values(results: Sequence[EvalResult]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for result in results:
        if result.status != "ok":
            continue
        for name, verdict in result.scores.items():
            if verdict.value is not None:
                out.setdefault(name, {}).setdefault(result.item_id, []).append(verdict.value)
    return out


def _diffs(baseline: Sequence[EvalResult], candidate: Sequence[EvalResult]) -> list[ItemDiff]:
    base, cand = _by_item(baseline), _by_item(candidate)
    diffs = []
    for item_id in sorted(set(base) & set(cand)):
        b, c = base[item_id], cand[item_id]
        reasons = {
            name: v.reason for name, v in c[0].scores.items() if v.reason and v.value is not None
        }
        diffs.append(
            ItemDiff(
                item_id,
                _means(b),
                _means(c),
                b[0].text,
                c[0].text,
                b[0].trace_id,
                c[0].trace_id,
                reasons,
            )
        )
    return diffs


def _by_item(results: Sequence[EvalResult]) -> dict[str, list[EvalResult]]:
    out: dict[str, list[EvalResult]] = {}
    for result in results:
        if result.status == "ok":
            out.setdefault(result.item_id, []).append(result)
    return out


def _means(results: list[EvalResult]) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for result in results:
        for name, verdict in result.scores.items():
            if verdict.value is not None:
                values.setdefault(name, []).append(verdict.value)
    return {name: statistics.fmean(v) for name, v in values.items()}


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def _comparison_json(c: ScorerComparison) -> dict[str, Any]:
    return {
        "scorer": c.scorer,
        "kind": c.kind,
        "method": c.method,
        "verdict": c.verdict,
        "items": c.items,
        "repeats": c.repeats,
        "baseline": c.baseline,
        "candidate": c.candidate,
        "difference": c.difference,
        "ci": [_finite(c.ci_low), _finite(c.ci_high)],
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "effect_size": _finite(c.effect_size),
        "mde": _finite(c.mde),
        "discordant": list(c.discordant) if c.discordant else None,
        "summary": c.summary(),
    }


def _diff_json(i: ItemDiff) -> dict[str, Any]:
    return {
        "item": i.item_id,
        "baseline": i.baseline,
        "candidate": i.candidate,
        "baseline_trace": i.baseline_trace,
        "candidate_trace": i.candidate_trace,
        "candidate_text": i.candidate_text[:500],
    }
