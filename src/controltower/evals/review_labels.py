"""Human scores from review queues as calibration labels (`evals.calibrate.HumanLabel`).

Each criterion of a queue's rubric is compared with the run's scorer of the same name
(or the one `pairs` maps it to), and its value is put on that judge's scale:

- a pass/fail judge: pass is 1 and fail 0; a 1..N value passes from the middle up;
- a pairwise judge (1 the candidate wins, 0 it loses, 0.5 a tie): pass (the candidate
  is better) is 1 and fail 0; on a 1..N scale, above the middle is 1, below 0, the
  middle 0.5 (so "1 = the baseline's is better, 2 = tie, 3 = the candidate's" reads right);
- a judge on a LOW-HIGH scale (its `scale:` setting, or 0..1 when its values fit): a 1..N
  value is spread linearly over LOW..HIGH (rounded on whole-number scales); pass and
  fail are HIGH and LOW.

A task made from a trace labels the run's item `trace-ID` (as `datasets add-from-traces`
names it) in every repeat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controltower.domain.evaluation import EvalResult, EvalRun
from controltower.domain.review import Criterion, HumanScore, ReviewQueue
from controltower.evals.calibrate import HumanLabel


@dataclass(frozen=True, slots=True)
class JudgeScale:
    """The values a run's scorer gives: pass/fail, pairwise, or LOW..HIGH."""

    kind: str  # "binary", "pairwise" or "range"
    low: float = 0.0
    high: float = 1.0
    whole: bool = False  # whole numbers only (a 1-5 judge)

    def describe(self) -> str:
        """`pass/fail`, `pairwise` or `1-5`."""
        if self.kind != "range":
            return "pass/fail" if self.kind == "binary" else "pairwise"
        return f"{self.low:g}-{self.high:g}"


def review_labels(
    run: EvalRun,
    results: Sequence[EvalResult],
    scores: Sequence[HumanScore],
    queues: Mapping[str, ReviewQueue],
    pairs: Mapping[str, str] | None = None,
) -> tuple[list[HumanLabel], list[str]]:
    """The labels the human scores give each paired scorer, and notes on what was left
    out (a criterion without a scorer) or put on another scale."""
    scorers = {name for result in results for name in result.scores}
    scales: dict[str, JudgeScale] = {}
    labels: list[HumanLabel] = []
    notes: dict[str, str] = {}
    for score in scores:
        for criterion in queues[score.queue_id].rubric:
            value = score.values.get(criterion.name)
            scorer = (pairs or {}).get(criterion.name, criterion.name)
            if value is None:
                continue
            if scorer not in scorers:
                notes[criterion.name] = (
                    f"criterion {criterion.name!r} has no scorer of that name in run {run.id} "
                    f"(its scorers: {', '.join(sorted(scorers)) or 'none'}); compare them with "
                    f"--pair {criterion.name}=SCORER"
                )
                continue
            if scorer not in scales:
                scales[scorer] = judge_scale(run, results, scorer)
            scale = scales[scorer]
            if not _same(criterion, scale):
                notes[f"{criterion.name}>{scorer}"] = (
                    f"criterion {criterion.name!r} ({criterion.scale}) is compared with "
                    f"{scorer} ({scale.describe()}): its values were put on the judge's scale"
                )
            labels.append(_label(score, criterion, scorer, on_judge_scale(value, criterion, scale)))
    return labels, list(notes.values())


def judge_scale(run: EvalRun, results: Sequence[EvalResult], scorer: str) -> JudgeScale:
    """How a scorer of the run scores: from its settings in the run's record, else from the
    values it gave."""
    entries = run.record.get("scorers") or ()
    entry: dict[str, Any] = next((e for e in entries if e.get("name") == scorer), {})
    verdicts = [r.scores[scorer] for r in results if scorer in r.scores]
    if entry.get("type") == "pairwise" or any("outcome" in v.details for v in verdicts):
        return JudgeScale("pairwise")
    default = "1-5" if entry.get("type") == "judge" else ""  # the rubric judge's default
    setting = str((entry.get("config") or {}).get("scale") or default)
    low, _, high = setting.partition("-")
    if low.isdigit() and high.isdigit() and int(high) > int(low):
        return JudgeScale("range", float(low), float(high), whole=True)
    values = [v.value for v in verdicts if v.value is not None]
    passes = setting == "pass-fail" or (
        bool(values) and all(v.passed is not None for v in verdicts)
    )
    if passes and set(values) <= {0.0, 1.0}:
        return JudgeScale("binary")
    if not values or all(0.0 <= v <= 1.0 for v in values):
        return JudgeScale("range", 0.0, 1.0)
    whole = all(float(v).is_integer() for v in values)
    return JudgeScale("range", min(values), max(max(values), min(values) + 1), whole)


def on_judge_scale(value: float, criterion: Criterion, scale: JudgeScale) -> float:
    """A criterion's value on a judge's scale (see the module's docstring)."""
    share = value if criterion.binary else (value - 1) / (criterion.points - 1)
    if scale.kind == "binary":
        return 1.0 if share >= 0.5 else 0.0
    if scale.kind == "pairwise":
        return 1.0 if share > 0.5 else 0.0 if share < 0.5 else 0.5
    spread = scale.low + share * (scale.high - scale.low)
    return float(math.floor(spread + 0.5)) if scale.whole else spread


def _same(criterion: Criterion, scale: JudgeScale) -> bool:
    if scale.kind == "binary":
        return criterion.binary
    if scale.kind == "pairwise":
        return criterion.binary or criterion.points == 3
    return not criterion.binary and (scale.low, scale.high) == (1.0, float(criterion.points))


def _label(score: HumanScore, criterion: Criterion, scorer: str, value: float) -> HumanLabel:
    item = score.item
    if item.trace_id is not None:
        return HumanLabel(f"trace-{item.trace_id}", scorer, value, None, score.reviewer)
    return HumanLabel(item.item_id or "", scorer, value, item.repeat, score.reviewer)
