"""Paired run comparison: the tests, the MDE, Holm, the edge cases and small simulations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controltower.evals.power import detectable_difference, fewest_items
from controltower.evals.scoring import ScoreKind
from controltower.evals.stats import (
    ScorerComparison,
    ScorerValues,
    compare_scorer,
    compare_scorers,
    holm,
    mcnemar_exact,
)

Runs = dict[str, list[float]]


def runs(values: Sequence[Sequence[float]], prefix: str = "item") -> Runs:
    """Item ids for per-item value lists."""
    return {f"{prefix}-{i}": list(v) for i, v in enumerate(values)}


def passes(pattern: Sequence[int]) -> Runs:
    return runs([[float(x)] for x in pattern])


def finite(c: ScorerComparison) -> bool:
    numbers = [c.baseline, c.candidate, c.difference, c.p_value, c.p_adjusted]
    return all(math.isfinite(x) for x in numbers)


# --- hand cases ----------------------------------------------------------------------------


def test_mcnemar_exact_known_values() -> None:
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    assert mcnemar_exact(6, 0) == pytest.approx(0.03125)
    assert mcnemar_exact(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0


def test_one_sample_per_item_uses_mcnemar() -> None:
    baseline = passes([1] * 20 + [0] * 6 + [0] * 4)
    candidate = passes([1] * 20 + [1] * 6 + [0] * 4)
    c = compare_scorer("contains", "binary", baseline, candidate)
    assert (c.method, c.discordant, c.items, c.repeats) == ("mcnemar-exact", (0, 6), 30, 1.0)
    assert c.p_value == pytest.approx(0.03125)
    assert c.difference == pytest.approx(6 / 30)
    assert c.verdict == "improved"


def test_holm_known_values() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == [0.02]
    assert holm([]) == []


def test_clear_regression() -> None:
    baseline = runs([[1.0, 1.0, 1.0]] * 90 + [[0.0, 1.0, 0.0]] * 10)
    candidate = runs([[1.0, 0.0, 0.0]] * 60 + [[1.0, 1.0, 1.0]] * 40)
    c = compare_scorer("contains", "binary", baseline, candidate)
    assert c.method == "sign-flip-monte-carlo"
    assert c.verdict == "regressed"
    assert c.p_value < 0.001
    assert c.ci_high < 0 < c.baseline - c.candidate
    assert c.effect_size < 0
    assert c.items == 100 and c.repeats == 3.0


def test_clear_improvement_of_a_numeric_score() -> None:
    rng = np.random.default_rng(7)
    quality = rng.normal(3, 1, 80)
    baseline = runs([[q + e] for q, e in zip(quality, rng.normal(0, 0.3, 80), strict=True)])
    candidate = runs([[q + 0.5 + e] for q, e in zip(quality, rng.normal(0, 0.3, 80), strict=True)])
    c = compare_scorer("judge", "numeric", baseline, candidate)
    assert c.verdict == "improved"
    assert 0.3 < c.ci_low < c.difference < c.ci_high < 0.7
    assert c.effect_size > 1
    assert c.mde < c.difference


def test_higher_is_better_false_flips_the_verdict() -> None:
    baseline = runs([[1.0, 1.0]] * 40)
    candidate = runs([[2.0, 2.5]] * 30 + [[1.0, 1.0]] * 10)
    up = compare_scorer("latency", "numeric", baseline, candidate)
    down = compare_scorer("latency", "numeric", baseline, candidate, higher_is_better=False)
    assert (up.verdict, down.verdict) == ("improved", "regressed")
    assert down.difference == up.difference > 0
    assert not down.higher_is_better


def test_zero_differences_are_unchanged() -> None:
    values = runs([[1.0, 0.0, 1.0]] * 30 + [[0.0, 0.0, 0.0]] * 10)
    c = compare_scorer("contains", "binary", values, values)
    assert (c.p_value, c.verdict, c.effect_size) == (1.0, "unchanged", 0.0)
    assert c.ci_low == c.ci_high == c.difference == 0.0
    assert 0 < c.mde < 0.2


def test_constant_values_give_a_finite_mde() -> None:
    values = runs([[5.0]] * 50)
    c = compare_scorer("judge", "numeric", values, values)
    assert c.verdict == "unchanged" and c.p_value == 1.0
    # with no spread, the floor: the fewest items that can reach alpha, moved one step
    assert c.mde == pytest.approx(fewest_items(0.05) / 50)


def test_no_paired_items() -> None:
    c = compare_scorer("contains", "binary", passes([1, 1]), runs([[0.0]], prefix="other"))
    assert (c.items, c.method, c.verdict, c.p_value) == (0, "no-pairs", "unchanged", 1.0)
    assert c.mde == math.inf
    assert c.summary() == "contains: no paired items: unchanged"
    assert compare_scorer("x", "numeric", {}, {}).verdict == "unchanged"


def test_items_with_no_value_on_one_side_are_not_paired() -> None:
    baseline = {"a": [1.0], "b": [], "c": [math.nan], "d": [0.0, math.inf]}
    candidate = {"a": [0.0], "b": [1.0], "c": [1.0], "d": [1.0]}
    c = compare_scorer("contains", "binary", baseline, candidate)
    assert c.items == 2
    assert c.difference == 0.0
    assert finite(c)


def test_single_item() -> None:
    c = compare_scorer("contains", "binary", {"a": [1.0, 1.0]}, {"a": [0.0, 0.0]})
    assert (c.items, c.verdict, c.p_value) == (1, "unchanged", 1.0)
    assert (c.ci_low, c.ci_high, c.mde) == (-math.inf, math.inf, math.inf)
    assert c.effect_size == 0.0
    assert finite(c)
    assert "1 item x 2" in c.summary()


def test_all_items_moving_the_same_way_is_exact() -> None:
    baseline = runs([[0.0, 1.0]] * 6)
    candidate = runs([[1.0, 1.0]] * 6)
    c = compare_scorer("contains", "binary", baseline, candidate)
    assert c.method == "sign-flip-exact"
    assert c.p_value == pytest.approx(2 / 2**6)  # the same as McNemar's 0 vs 6
    assert c.effect_size == math.inf
    assert c.verdict == "improved"


def test_summary_line() -> None:
    baseline = runs([[1.0, 1.0, 1.0]] * 90 + [[0.0, 0.0, 0.0]] * 10)
    candidate = runs([[1.0, 1.0, 0.0]] * 60 + [[1.0, 1.0, 1.0]] * 40)
    line = compare_scorer("contains", "binary", baseline, candidate).summary()
    assert line.startswith("contains: 0.90 -> 0.80 (-0.10, 95% CI -")
    assert "), p=0.0" in line and ", d=-0." in line and ", MDE 0.1" in line
    assert line.endswith(", 100 items x 3: regressed")


# --- reproducibility and clustering --------------------------------------------------------


def test_same_data_same_result_in_any_order() -> None:
    rng = np.random.default_rng(3)
    values = rng.random((150, 2, 3)).round(2)
    baseline = runs(values[:, 0].tolist())
    candidate = runs(values[:, 1].tolist())
    first = compare_scorer("similarity", "numeric", baseline, candidate)
    again = compare_scorer("similarity", "numeric", dict(reversed(baseline.items())), candidate)
    assert astuple(first) == astuple(again)
    assert first.method == "sign-flip-monte-carlo"
    seeded = compare_scorer("similarity", "numeric", baseline, candidate, seed=1)
    assert seeded == compare_scorer("similarity", "numeric", baseline, candidate, seed=1)
    assert seeded.p_value == pytest.approx(first.p_value, abs=0.02)


def test_repeats_are_clustered_by_item() -> None:
    baseline = passes([1] * 60 + [1] * 8 + [0] * 2 + [0] * 30)
    candidate = passes([1] * 60 + [0] * 8 + [1] * 2 + [0] * 30)
    once = compare_scorer("contains", "binary", baseline, candidate)
    tenfold = {k: v * 10 for k, v in baseline.items()}, {k: v * 10 for k, v in candidate.items()}
    repeated = compare_scorer("contains", "binary", *tenfold)
    # the same samples counted as 1,000 independent items
    flat = [{f"{k}/{r}": [v[0]] for k, v in side.items() for r in range(10)} for side in tenfold]
    naive = compare_scorer("contains", "binary", *flat)
    assert repeated.repeats == 10.0 and repeated.items == 100
    assert repeated.p_value == pytest.approx(once.p_value, rel=0.15)
    assert repeated.verdict == once.verdict == "unchanged"
    assert naive.p_value < once.p_value / 100 and naive.verdict == "regressed"


# --- several scorers -----------------------------------------------------------------------


def test_holm_across_scorers_sets_the_verdicts() -> None:
    baseline = passes([1] * 20 + [0] * 6 + [0] * 4)
    candidate = passes([1] * 20 + [1] * 6 + [0] * 4)
    alone = compare_scorer("contains", "binary", baseline, candidate)
    flat = ScorerValues("exact", "binary", baseline, baseline)
    both = compare_scorers([ScorerValues("contains", "binary", baseline, candidate), flat])
    assert alone.verdict == "improved"
    assert [c.scorer for c in both] == ["contains", "exact"]
    assert both[0].p_value == alone.p_value
    assert both[0].p_adjusted == pytest.approx(2 * alone.p_value)
    assert both[0].verdict == "unchanged"
    assert "(Holm=0.062)" in both[0].summary()
    assert both[0].mde > alone.mde  # each scorer's share of alpha is smaller


def test_compare_scorers_with_nothing() -> None:
    assert compare_scorers([]) == []


# --- the MDE -------------------------------------------------------------------------------


def test_detectable_difference() -> None:
    textbook = (1.959964 + 0.841621) * 0.3 / math.sqrt(10_000)
    assert detectable_difference(0.3, 10_000) == pytest.approx(textbook, rel=0.01)
    assert detectable_difference(0.3, 200) > (1.959964 + 0.841621) * 0.3 / math.sqrt(200)
    assert detectable_difference(0.3, fewest_items(0.05) - 1) == math.inf
    assert detectable_difference(0.0, 100, step=0.5) == pytest.approx(6 * 0.5 / 100)
    toward_half = detectable_difference(0.3, 200, pass_rate=0.8, repeats=3)
    at_half = detectable_difference(0.3, 200, pass_rate=0.5, repeats=3)
    assert toward_half > at_half
    assert detectable_difference(0.9, 8, pass_rate=0.9) == math.inf  # above 1: out of reach


# --- arbitrary input -----------------------------------------------------------------------

VALUES = st.lists(
    st.one_of(
        st.sampled_from([0.0, 1.0, math.nan, math.inf]),
        st.floats(min_value=-1e6, max_value=1e6),
    ),
    max_size=4,
)
SIDE = st.dictionaries(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), VALUES, max_size=20)


@settings(max_examples=150, deadline=None)
@given(SIDE, SIDE, st.sampled_from(["binary", "numeric"]), st.booleans())
def test_never_raises_nor_gives_nan(
    baseline: Mapping[str, list[float]],
    candidate: Mapping[str, list[float]],
    kind: ScoreKind,
    higher_is_better: bool,
) -> None:
    c = compare_scorer(
        "s", kind, baseline, candidate, higher_is_better=higher_is_better, resamples=200
    )
    assert c.verdict in ("improved", "regressed", "unchanged")
    assert finite(c) and 0 <= c.p_value <= 1
    assert not any(math.isnan(x) for x in (c.ci_low, c.ci_high, c.effect_size, c.mde))
    assert c.ci_low <= c.ci_high


# --- small seeded simulations --------------------------------------------------------------


def simulate(rng: np.random.Generator, items: int, repeats: int, drop: float) -> tuple[Runs, Runs]:
    """Items with a latent pass rate; the candidate passes each `drop` less often."""
    rate = rng.beta(3, 1, items)
    baseline = (rng.random((items, repeats)) < rate[:, None]).astype(float)
    candidate = (rng.random((items, repeats)) < (rate - drop)[:, None]).astype(float)
    return runs(baseline.tolist()), runs(candidate.tolist())


def verdicts(trials: int, drop: float, seed: int) -> tuple[list[str], list[float]]:
    rng = np.random.default_rng(seed)
    found = [
        compare_scorer("s", "binary", *simulate(rng, 100, 2, drop), resamples=2_000)
        for _ in range(trials)
    ]
    return [c.verdict for c in found], [c.mde for c in found]


def test_simulated_false_regressions_are_rare() -> None:
    found, _ = verdicts(200, 0.0, seed=11)
    assert found.count("regressed") / len(found) <= 0.06
    assert found.count("unchanged") / len(found) >= 0.9


def test_simulated_power_at_the_printed_mde() -> None:
    _, mdes = verdicts(100, 0.0, seed=12)
    found, _ = verdicts(200, float(np.median(mdes)), seed=13)
    assert 0.65 <= found.count("regressed") / len(found) <= 0.93


def test_simulated_large_drop_is_caught() -> None:
    found, _ = verdicts(100, 0.25, seed=14)
    assert found.count("regressed") / len(found) >= 0.9
