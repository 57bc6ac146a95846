"""Human scores from review queues calibrate a judge: each criterion put on its judge's
scale, kappa computed by hand, trace items matched, what cannot be paired named."""

from __future__ import annotations

import pytest

from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.domain.review import Criterion, HumanScore, QueueSource, ReviewItem, ReviewQueue
from controltower.evals.calibrate import HumanLabel, calibrate
from controltower.evals.review_labels import JudgeScale, judge_scale, on_judge_scale, review_labels

SCORERS = [
    {"type": "closed-qa", "name": "correct", "config": {}, "judge_model": "judge"},
    {"type": "judge", "name": "quality", "config": {"scale": "1-5"}, "judge_model": "judge"},
    {"type": "pairwise", "name": "pairwise", "config": {}, "judge_model": "judge"},
]
RUBRIC = (Criterion("correct"), Criterion("quality", "1-5"), Criterion("pairwise", "1-3"))
RUN = EvalRun("run_j", "refund", 1, "fp", "finished", {"scorers": SCORERS})
QUEUE = ReviewQueue("rq_1", "people", RUBRIC, QueueSource(run_id="run_j"), 1)


def results(correct: list[float], quality: list[float] | None = None) -> list[EvalResult]:
    out = []
    for i, ok in enumerate(correct):
        scores = {"correct": Verdict.of_bool(bool(ok))}
        if quality is not None:
            scores["quality"] = Verdict(quality[i], None, "why")
        out.append(EvalResult("run_j", f"q{i}", 0, "ok", f"a{i}", f"a{i}", scores=scores))
    return out


def human(i: int, reviewer: str = "ana", **values: float) -> HumanScore:
    return HumanScore(i + 1, "rq_1", ReviewItem("run_j", f"q{i}", 0), reviewer, values)


def test_pass_fail_agreement_and_plain_kappa_from_a_queue() -> None:
    judge = [1, 1, 0, 0, 1, 0, 1, 1, 0, 0]
    people = [1, 0, 0, 0, 1, 0, 1, 1, 1, 0]
    scores = [human(i, correct=v) for i, v in enumerate(people)]
    labels, notes = review_labels(RUN, results(judge), scores, {"rq_1": QUEUE})
    assert notes == []
    assert labels[1] == HumanLabel("q1", "correct", 0.0, 0, "ana")
    (found,) = calibrate(RUN, results(judge), labels)
    # agreement 8/10; both say pass half the time, so chance agreement is 1/2:
    # kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6
    assert found.kappa_weighting == "none" and found.agreement == pytest.approx(0.8)
    assert found.kappa == pytest.approx(0.6)
    assert found.kappa_ci is not None and found.kappa_ci[0] < 0.6 < found.kappa_ci[1]


def test_a_scale_uses_quadratic_weights_by_the_distance_of_the_values() -> None:
    # values 1, 2, 4, 5 (nobody chose 3): 4 against 5 is one point of four apart.
    # observed: two of four pairs miss by 1 -> 2 * 1/4 * (1/4)^2 = 1/32
    # expected: uniform margins over {1, 2, 4, 5}: the squared gaps of all 16 ordered
    # pairs sum to 80, / 4^2 = 5, * 1/16 = 5/16; kappa = 1 - (1/32) / (5/16) = 0.9
    # (sklearn's cohen_kappa_score(..., weights="quadratic", labels=[1, 2, 3, 4, 5]))
    judge, people = [1, 2, 4, 5], [1, 2, 5, 4]
    scores = [human(i, correct=1, quality=v) for i, v in enumerate(people)]
    run_results = results([1, 1, 1, 1], [float(v) for v in judge])
    labels, _ = review_labels(RUN, run_results, scores, {"rq_1": QUEUE})
    found = {c.scorer: c for c in calibrate(RUN, run_results, labels)}
    quality = found["quality"]
    assert quality.kappa_weighting == "quadratic" and quality.kappa == pytest.approx(0.9)
    assert quality.agreement == pytest.approx(0.5) and quality.within_one == pytest.approx(1.0)
    assert found["correct"].kappa is None  # everyone always said pass: kappa is undefined


def test_reviewers_of_one_item_are_each_a_pair_and_the_interval_resamples_items() -> None:
    scores = [human(i, r, correct=v) for i in range(6) for r, v in (("ana", 1), ("bo", i % 2))]
    labels, _ = review_labels(RUN, results([1] * 6), scores, {"rq_1": QUEUE})
    (found,) = calibrate(RUN, results([1] * 6), labels)
    assert (found.pairs, found.items) == (12, 6)


@pytest.mark.parametrize(
    ("value", "criterion", "scale", "expected"),
    [
        (1.0, Criterion("c"), JudgeScale("binary"), 1.0),
        (4.0, Criterion("c", "1-5"), JudgeScale("binary"), 1.0),
        (2.0, Criterion("c", "1-5"), JudgeScale("binary"), 0.0),
        (1.0, Criterion("c", "1-3"), JudgeScale("pairwise"), 0.0),
        (2.0, Criterion("c", "1-3"), JudgeScale("pairwise"), 0.5),
        (3.0, Criterion("c", "1-3"), JudgeScale("pairwise"), 1.0),
        (0.0, Criterion("c"), JudgeScale("pairwise"), 0.0),
        (2.0, Criterion("c", "1-3"), JudgeScale("range", 1, 5, whole=True), 3.0),
        (3.0, Criterion("c", "1-5"), JudgeScale("range", 1, 5, whole=True), 3.0),
        (1.0, Criterion("c"), JudgeScale("range", 1, 5, whole=True), 5.0),
        (2.0, Criterion("c", "1-3"), JudgeScale("range", 0, 1), 0.5),
    ],
)
def test_values_are_put_on_the_judges_scale(
    value: float, criterion: Criterion, scale: JudgeScale, expected: float
) -> None:
    assert on_judge_scale(value, criterion, scale) == expected


def test_the_judges_scale_comes_from_its_settings_or_its_values() -> None:
    pairwise = [
        EvalResult(
            "run_j", "q0", 0, "ok", scores={"pairwise": Verdict(0.5, details={"outcome": "flip"})}
        )
    ]
    assert judge_scale(RUN, results([1, 0]), "correct").kind == "binary"
    assert judge_scale(RUN, results([1], [3.0]), "quality") == JudgeScale("range", 1, 5, True)
    assert judge_scale(RUN, pairwise, "pairwise").kind == "pairwise"
    similar = [EvalResult("run_j", "q0", 0, "ok", scores={"sim": Verdict(0.7)})]
    assert judge_scale(RUN, similar, "sim") == JudgeScale("range", 0.0, 1.0)
    default = EvalRun(
        "run_k", "x", 1, "fp", record={"scorers": [{"type": "judge", "name": "judge"}]}
    )
    assert judge_scale(default, [], "judge") == JudgeScale("range", 1, 5, True)


def test_trace_items_other_scales_and_unpaired_criteria_are_told() -> None:
    rubric = (Criterion("quality", "1-3"), Criterion("tone"))
    queue = ReviewQueue("rq_2", "traces", rubric, QueueSource(trace_filter={}), 1)
    score = HumanScore(9, "rq_2", ReviewItem(trace_id="ab" * 16), "cy", {"quality": 2, "tone": 1})
    labels, notes = review_labels(RUN, results([1], [4.0]), [score], {"rq_2": queue})
    assert labels == [HumanLabel(f"trace-{'ab' * 16}", "quality", 3.0, None, "cy")]
    assert any(
        "'tone' has no scorer of that name" in n and "--pair tone=SCORER" in n for n in notes
    )
    assert any("'quality' (1-3) is compared with quality (1-5)" in n for n in notes)
    paired, _ = review_labels(RUN, results([1]), [score], {"rq_2": queue}, {"tone": "correct"})
    assert [(x.scorer, x.value) for x in paired] == [("correct", 1.0)]
