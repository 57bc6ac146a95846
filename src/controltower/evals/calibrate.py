"""How far an LLM judge can be trusted: its verdicts against human labels of the same items.

For each judge of a run that humans labelled: the raw agreement, Cohen's kappa (plain for
pass/fail, quadratically weighted for a scale, where 4 against 5 is a smaller miss than 1
against 5) with a bootstrap interval that resamples items (repeats of an item are not
independent), and the judge's preference for longer answers: the rank correlation of
answer length with the judge's score beside the same correlation for the humans' score,
the difference being the judge's own bias. For a pairwise judge: how often its verdict
flips when the two answers swap places, and how often it picks the longer answer, overall
and where the humans tied or picked the shorter one.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from controltower.domain.evaluation import EvalResult, EvalRun
from controltower.errors import InvalidRequest

_WORDS = {"pass": 1.0, "true": 1.0, "yes": 1.0, "fail": 0.0, "false": 0.0, "no": 0.0}
_PAIRWISE_WORDS = {"win": 1.0, "better": 1.0, "loss": 0.0, "worse": 0.0, "tie": 0.5}


@dataclass(frozen=True, slots=True)
class HumanLabel:
    """A person's score of one item (or one repeat of it) on one scorer's question."""

    item_id: str
    scorer: str | None
    value: float
    repeat: int | None = None
    reviewer: str | None = None


@dataclass(slots=True)
class Calibration:
    """One judge against the humans."""

    scorer: str
    kind: str  # "binary", "scale" or "pairwise"
    pairs: int  # (judge verdict, human label) pairs compared
    items: int
    agreement: float
    within_one: float | None  # on a scale: the share of pairs at most one step apart
    kappa: float | None
    kappa_weighting: str  # "none" or "quadratic"
    kappa_ci: tuple[float, float] | None
    judge_length_correlation: float | None
    human_length_correlation: float | None
    length_bias: float | None  # judge minus human: > 0 the judge favours longer answers
    swap_flip_rate: float | None = None
    longer_preferred: float | None = None
    longer_preferred_against_humans: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON."""
        return asdict(self)


def read_labels(path: Path) -> list[HumanLabel]:
    """Human labels from JSONL or CSV: `item_id` (or `id`), `value` (a number, pass/fail,
    or for pairwise win/loss/tie), and optionally `scorer`, `repeat`, `reviewer`.
    Every problem at once, as `FILE:LINE: problem; fix: ...`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot read the labels: {exc.strerror}") from None
    rows = _csv_rows(text) if path.suffix.lower() == ".csv" else _jsonl_rows(path, text)
    labels: list[HumanLabel] = []
    problems: list[str] = []
    for line, row in rows:
        if isinstance(row, str):
            problems.append(f"{path}:{line}: {row}")
            continue
        label, problem = _label(row)
        if problem:
            problems.append(f"{path}:{line}: {problem}")
        elif label is not None:
            labels.append(label)
    if problems:
        raise InvalidRequest("; ".join(problems[:20]), param="labels")
    if not labels:
        raise InvalidRequest(f"{path}: no labels; fix: write one line per labelled item")
    return labels


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rows.append((number, f"not JSON ({exc.msg}); fix: one JSON object per line"))
            continue
        rows.append((number, row if isinstance(row, dict) else "not a JSON object"))
    return rows


def _csv_rows(text: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    return [(number, dict(row)) for number, row in enumerate(reader, 2)]


def _label(row: dict[str, Any]) -> tuple[HumanLabel | None, str | None]:
    item = row.get("item_id", row.get("id"))
    if item in (None, ""):
        return None, "no item_id; fix: name the item the label is for"
    value = _value(row.get("value"))
    if value is None:
        got = orjson.dumps(row.get("value"), default=str).decode()
        return None, f"value {got} is not a score; fix: a number, pass/fail or win/loss/tie"
    repeat = row.get("repeat")
    try:
        repeat_number = None if repeat in (None, "") else int(repeat)
    except (TypeError, ValueError):
        return None, f"repeat {repeat!r} is not a whole number; fix: 0, 1, ... or leave it out"
    scorer = row.get("scorer") or None
    reviewer = row.get("reviewer") or None
    return HumanLabel(str(item), scorer, value, repeat_number, reviewer), None


def _value(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _WORDS or word in _PAIRWISE_WORDS:
            return _WORDS.get(word, _PAIRWISE_WORDS.get(word))
        try:
            return float(word)
        except ValueError:
            return None
    return None


def judge_names(run: EvalRun) -> list[str]:
    """The scorers of a run that are LLM judges (their record names a judge model)."""
    return [
        str(entry.get("name") or entry.get("type"))
        for entry in run.record.get("scorers") or []
        if entry.get("judge_model")
    ]


def calibrate(
    run: EvalRun,
    results: Sequence[EvalResult],
    labels: Sequence[HumanLabel],
    *,
    baseline_texts: dict[tuple[str, int], str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> list[Calibration]:
    """Each labelled judge of the run against the humans (labels without a scorer go to
    the run's only judge)."""
    judges = judge_names(run) or sorted({n for r in results for n in r.scores})
    by_scorer: dict[str, list[HumanLabel]] = defaultdict(list)
    for label in labels:
        name = label.scorer or (judges[0] if len(judges) == 1 else None)
        if name is None:
            raise InvalidRequest(
                "a label names no scorer and the run has several judges; fix: add a scorer "
                f"column ({', '.join(judges)})"
            )
        by_scorer[name].append(label)
    unknown = sorted(set(by_scorer) - {n for r in results for n in r.scores})
    if unknown:
        raise InvalidRequest(f"the run has no scorer {', '.join(unknown)}; fix: use {judges}")
    rng = np.random.default_rng(seed)
    return [
        _one(name, results, by_scorer[name], baseline_texts or {}, resamples, rng)
        for name in sorted(by_scorer)
    ]


def _one(
    name: str,
    results: Sequence[EvalResult],
    labels: list[HumanLabel],
    baselines: dict[tuple[str, int], str],
    resamples: int,
    rng: np.random.Generator,
) -> Calibration:
    scored = [r for r in results if r.status == "ok" and r.scores.get(name)]
    verdicts = [(r, r.scores[name]) for r in scored if r.scores[name].value is not None]
    by_item: dict[str, list[HumanLabel]] = defaultdict(list)
    for label in labels:
        by_item[label.item_id].append(label)
    pairs = [
        (result.item_id, float(verdict.value), label.value, len(result.text))  # type: ignore[arg-type]
        for result, verdict in verdicts
        for label in by_item.get(result.item_id, ())
        if label.repeat is None or label.repeat == result.repeat
    ]
    if not pairs:
        raise InvalidRequest(f"no labelled item of the run has a {name} score to compare")
    items = [p[0] for p in pairs]
    judge = np.array([p[1] for p in pairs])
    human = np.array([p[2] for p in pairs])
    lengths = np.array([p[3] for p in pairs], dtype=float)
    pairwise = any("outcome" in v.details for _, v in verdicts)
    values = set(judge.tolist()) | set(human.tolist())
    kind = "pairwise" if pairwise else ("binary" if values <= {0.0, 1.0} else "scale")
    weighting = "quadratic" if kind != "binary" else "none"
    levels = sorted(values)
    out = Calibration(
        scorer=name,
        kind=kind,
        pairs=len(pairs),
        items=len(set(items)),
        agreement=float(np.mean(judge == human)),
        within_one=float(np.mean(np.abs(judge - human) <= 1)) if kind == "scale" else None,
        kappa=_kappa(_confusion(judge, human, levels), weighting, levels),
        kappa_weighting=weighting,
        kappa_ci=_kappa_ci(items, judge, human, levels, weighting, resamples, rng),
        judge_length_correlation=spearman(lengths, judge),
        human_length_correlation=spearman(lengths, human),
        length_bias=None,
    )
    if out.judge_length_correlation is not None and out.human_length_correlation is not None:
        out.length_bias = out.judge_length_correlation - out.human_length_correlation
    if pairwise:
        _pairwise(out, verdicts, by_item, baselines)
    return out


def _pairwise(
    out: Calibration,
    verdicts: list[tuple[EvalResult, Any]],
    by_item: dict[str, list[HumanLabel]],
    baselines: dict[tuple[str, int], str],
) -> None:
    outcomes = [v.details.get("outcome") for _, v in verdicts]
    out.swap_flip_rate = sum(o == "flip" for o in outcomes) / len(outcomes)
    longer = against = against_longer = 0
    decisive = 0
    for result, verdict in verdicts:
        base = baselines.get(result.key, baselines.get((result.item_id, 0)))
        outcome = verdict.details.get("outcome")
        if base is None or outcome not in ("win", "loss") or len(base) == len(result.text):
            continue
        candidate_longer = len(result.text) > len(base)
        picked_longer = (outcome == "win") == candidate_longer
        decisive += 1
        longer += picked_longer
        for label in by_item.get(result.item_id, ()):
            human_longer = label.value == 1.0 if candidate_longer else label.value == 0.0
            if not human_longer:  # the humans tied, or picked the shorter answer
                against += 1
                against_longer += picked_longer
    out.longer_preferred = longer / decisive if decisive else None
    out.longer_preferred_against_humans = against_longer / against if against else None


def _confusion(judge: np.ndarray, human: np.ndarray, levels: list[float]) -> np.ndarray:
    index = {level: i for i, level in enumerate(levels)}
    matrix = np.zeros((len(levels), len(levels)))
    for a, b in zip(judge.tolist(), human.tolist(), strict=True):
        matrix[index[a], index[b]] += 1
    return matrix


def _kappa(matrix: np.ndarray, weighting: str, levels: list[float]) -> float | None:
    """Cohen's kappa of a confusion matrix (judge rows, human columns); quadratic weights
    grow with the distance of the values (not of their places among the values seen, so
    that 1 against 5 stays a far miss when nobody chose 2, 3 or 4)."""
    total = matrix.sum()
    k = matrix.shape[0]
    if total == 0 or k < 2:
        return None
    observed = matrix / total
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    values = np.asarray(levels, dtype=float)
    gaps = values[:, None] - values[None, :]
    spread = float(values.max() - values.min())
    weights = (gaps / spread) ** 2 if weighting == "quadratic" else (gaps != 0).astype(float)
    disagreement = float((weights * expected).sum())
    if disagreement == 0:
        return None  # both raters always gave one and the same value: kappa is undefined
    return 1.0 - float((weights * observed).sum()) / disagreement


def _kappa_ci(
    items: list[str],
    judge: np.ndarray,
    human: np.ndarray,
    levels: list[float],
    weighting: str,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, float] | None:
    """A 95% percentile interval, resampling whole items with their pairs."""
    names = sorted(set(items))
    if len(names) < 2 or resamples <= 0:
        return None
    position = {name: n for n, name in enumerate(names)}
    per_item = np.zeros((len(names), len(levels), len(levels)))
    index = {level: i for i, level in enumerate(levels)}
    for name, a, b in zip(items, judge.tolist(), human.tolist(), strict=True):
        per_item[position[name], index[a], index[b]] += 1
    counts = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=resamples)
    matrices = np.tensordot(counts, per_item, axes=(1, 0))
    kappas = [_kappa(m, weighting, levels) for m in matrices]
    found = np.array([k for k in kappas if k is not None])
    if found.size == 0:
        return None
    low, high = np.percentile(found, [2.5, 97.5])
    return float(low), float(high)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None when one is constant."""
    if len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, groups = np.unique(values, return_inverse=True)
    means = np.bincount(groups, weights=ranks) / np.bincount(groups)
    return np.asarray(means[groups], dtype=float)
