"""Judge calibration: agreement, kappa, length bias and swap flips against human labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from controltower.domain.evaluation import EvalResult, EvalRun, Verdict
from controltower.errors import InvalidRequest
from controltower.evals.calibrate import HumanLabel, calibrate, read_labels, spearman
from controltower.store import open_eval_store

JUDGE = [{"type": "judge", "name": None, "config": {}, "judge_model": "judge"}]


def _run(values: list[float], texts: list[str] | None = None, **details: list) -> tuple:
    run = EvalRun("run_judged", "refund", 1, "fp", status="finished", record={"scorers": JUDGE})
    results = []
    for i, value in enumerate(values):
        extra = {key: {"outcome": v[i]} for key, v in details.items()}.get("outcome", {})
        verdict = Verdict(value, value == 1.0 if value in (0.0, 1.0) else None, details=extra)
        text = texts[i] if texts else f"answer {i}"
        results.append(EvalResult(run.id, f"q{i}", 0, "ok", text, text, scores={"judge": verdict}))
    return run, results


def _labels(values: list[float]) -> list[HumanLabel]:
    return [HumanLabel(f"q{i}", None, v) for i, v in enumerate(values)]


def test_pass_fail_kappa_is_the_plain_one() -> None:
    run, results = _run([1, 1, 0, 0, 1, 0, 1, 1, 0, 0])
    (c,) = calibrate(run, results, _labels([1, 0, 0, 0, 1, 0, 1, 1, 1, 0]))
    # agreement 0.8, chance 0.5 (both say pass half the time): (0.8 - 0.5) / 0.5
    assert (c.kind, c.kappa_weighting, c.pairs, c.items) == ("binary", "none", 10, 10)
    assert c.agreement == pytest.approx(0.8) and c.kappa == pytest.approx(0.6)
    assert c.kappa_ci is not None and c.kappa_ci[0] <= 0.6 <= c.kappa_ci[1]


def test_a_scale_is_weighted_quadratically() -> None:
    run, results = _run([1, 2, 3, 3])
    (c,) = calibrate(run, results, _labels([1, 3, 3, 2]))
    # observed weighted disagreement 0.125, expected 0.34375 (worked by hand)
    assert c.kind == "scale" and c.kappa_weighting == "quadratic"
    assert c.kappa == pytest.approx(1 - 0.125 / 0.34375)
    assert c.agreement == pytest.approx(0.5) and c.within_one == pytest.approx(1.0)


def test_a_judge_that_rewards_length_shows_a_positive_bias() -> None:
    texts = ["x" * n for n in (10, 20, 30, 40, 50, 60)]
    run, results = _run([1, 2, 3, 4, 5, 5], texts)
    (c,) = calibrate(run, results, _labels([3, 5, 2, 4, 3, 4]))
    assert c.judge_length_correlation is not None and c.judge_length_correlation > 0.9
    assert c.length_bias is not None and c.length_bias > 0.5


def test_pairwise_flips_and_the_longer_answer() -> None:
    outcomes = ["win", "win", "flip", "loss", "win"]
    texts = ["a much longer answer", "long answer here", "x", "short", "longer one"]
    run, results = _run([1.0, 1.0, 0.5, 0.0, 1.0], texts, outcome=outcomes)
    baselines = {(f"q{i}", 0): "mid" * 3 for i in range(5)}  # 9 characters
    humans = _labels([0.5, 1.0, 0.5, 1.0, 0.0])
    (c,) = calibrate(run, results, humans, baseline_texts=baselines)
    assert c.kind == "pairwise" and c.swap_flip_rate == pytest.approx(1 / 5)
    # decisive: q0 win longer, q1 win longer, q3 loss (baseline longer: picked longer),
    # q4 win longer -> 4 of 4 picked the longer answer
    assert c.longer_preferred == pytest.approx(1.0)
    # where humans tied or chose the shorter (q0 tie, q3 chose the short candidate, q4 loss)
    assert c.longer_preferred_against_humans == pytest.approx(1.0)


def test_spearman_with_ties_and_constants() -> None:
    import numpy as np

    assert spearman(np.array([1, 2, 3, 4.0]), np.array([2, 4, 6, 8.0])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 2, 3.0]), np.array([3, 2, 2, 1.0])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 2, 3.0]), np.array([5, 5, 5.0])) is None


def test_labels_from_jsonl_and_csv_and_their_problems(tmp_path: Path) -> None:
    good = tmp_path / "labels.jsonl"
    good.write_text('{"item_id": "q1", "value": "pass"}\n\n{"id": "q2", "value": 4, "repeat": 1}\n')
    assert read_labels(good) == [HumanLabel("q1", None, 1.0), HumanLabel("q2", None, 4.0, 1)]
    table = tmp_path / "labels.csv"
    table.write_text("item_id,scorer,value,reviewer\nq1,judge,fail,ann\nq2,judge,tie,bob\n")
    assert [(x.value, x.reviewer) for x in read_labels(table)] == [(0.0, "ann"), (0.5, "bob")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"value": 1}\nnot json\n{"item_id": "q3", "value": "great"}\n')
    with pytest.raises(InvalidRequest) as caught:
        read_labels(bad)
    message = caught.value.message
    assert f"{bad}:1: no item_id" in message and f"{bad}:2: not JSON" in message
    assert f"{bad}:3: value " in message and "fix:" in message


def test_labels_for_a_scorer_the_run_lacks_are_refused() -> None:
    run, results = _run([1, 0, 1])
    with pytest.raises(InvalidRequest, match="no scorer tone"):
        calibrate(run, results, [HumanLabel("q1", "tone", 1.0)])


def test_the_cli_prints_the_figures_and_refuses_an_unknown_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evals.db'}"
    store = open_eval_store(url)
    run, results = _run([1, 1, 0, 0, 1, 0, 1, 1, 0, 0])
    store.create_run(run)
    store.write_results(results)
    store.engine.dispose()
    labels = tmp_path / "labels.jsonl"
    rows = [{"item_id": f"q{i}", "value": v} for i, v in enumerate([1, 0, 0, 0, 1, 0, 1, 1, 1, 0])]
    labels.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    cli = [sys.executable, "-m", "controltower", "eval", "calibrate"]
    args = ["--labels", str(labels), "--database-url", url]
    done = subprocess.run([*cli, run.id, *args, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (figures,) = orjson.loads(done.stdout)
    assert figures["kappa"] == pytest.approx(0.6) and figures["pairs"] == 10
    table = subprocess.run([*cli, run.id, *args], capture_output=True, text=True)
    assert table.returncode == 0 and "0.60" in table.stdout
    missing = subprocess.run([*cli, "run_nope", *args], capture_output=True, text=True)
    assert missing.returncode == 2 and "run_nope" in missing.stderr
