"""Paired comparison of two eval runs, scorer by scorer: a verdict and its evidence.

Both runs score the same items, so the comparison is paired by item. Repeats of an item
are one cluster: each side is reduced to its per-item mean first, and every test,
interval and power figure works on the per-item differences `d_i = candidate - baseline`,
never on the samples as if they were independent items.

- Pass/fail with one sample per item on each side: McNemar's exact test (a binomial test
  on the discordant pairs).
- Repeats or numeric scores: a sign-flip permutation test of the mean of `d_i`, exact
  when few differences are not zero, seeded Monte Carlo otherwise. McNemar's test is the
  same test on differences in {-1, 0, 1}, so the two agree where both apply.
- The interval is a percentile bootstrap over items; the effect size is Cohen's d_z.
- The MDE is the smallest true difference the test detects with 80% power at this number
  of items and this spread of `d_i` (see `controltower.evals.power`).
- Several scorers compared at once: Holm's step-down adjustment keeps the chance of any
  false verdict at most `alpha`; verdicts are drawn from the adjusted p-values.

Randomness is seeded from a hash of the per-item differences unless a seed is given, so
the same data always give the same verdict.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from controltower.evals.power import ALPHA, detectable_difference
from controltower.evals.scoring import ScoreKind

Verdict = Literal["improved", "regressed", "unchanged"]
Floats = NDArray[np.float64]

RESAMPLES = 10_000
EXACT_LIMIT = 16  # up to 2**16 sign patterns are enumerated rather than sampled


@dataclass(frozen=True, slots=True)
class ScorerComparison:
    """How one scorer moved from the baseline run to the candidate run, and how sure we are.

    Means are over items of the per-item mean (0.0 when no item is paired); the interval
    is (-inf, inf) when it cannot be estimated (fewer than two items), and `mde` is inf
    when no difference could reach significance with so few items.
    """

    scorer: str
    kind: ScoreKind
    method: str  # "mcnemar-exact" | "sign-flip-exact" | "sign-flip-monte-carlo" | "no-pairs"
    items: int  # items with at least one value on both sides
    repeats: float  # mean values per item per side
    baseline: float
    candidate: float
    difference: float  # candidate - baseline
    ci_low: float  # 1 - alpha interval of the difference
    ci_high: float
    p_value: float  # two-sided
    p_adjusted: float  # Holm-adjusted across the scorers compared together
    effect_size: float  # Cohen's d_z: mean / sd of the per-item differences
    mde: float  # smallest |difference| detected with 80% power at this n and spread
    verdict: Verdict
    higher_is_better: bool = True
    discordant: tuple[int, int] | None = None  # McNemar: (baseline-only, candidate-only)
    alpha: float = ALPHA  # the level of the verdict; the interval is 1 - alpha

    def summary(self) -> str:
        """One line: the move, its interval, p-values, effect size, MDE and the verdict."""
        if self.items == 0:
            return f"{self.scorer}: no paired items: {self.verdict}"
        holm = f" (Holm{_p(self.p_adjusted)})" if self.p_adjusted != self.p_value else ""
        interval = f"{1 - self.alpha:.0%} CI {self.ci_low:+.2f}..{self.ci_high:+.2f}"
        return (
            f"{self.scorer}: {self.baseline:.2f} -> {self.candidate:.2f} "
            f"({self.difference:+.2f}, {interval}), p{_p(self.p_value)}{holm}, "
            f"d={self.effect_size:.2f}, MDE {self.mde:.2f}, "
            f"{self.items} item{'s' if self.items > 1 else ''} x {self.repeats:.3g}: {self.verdict}"
        )


@dataclass(frozen=True, slots=True)
class ScorerValues:
    """One scorer's values per item id in the two runs (errors are simply absent)."""

    scorer: str
    kind: ScoreKind
    baseline: Mapping[str, Sequence[float]]
    candidate: Mapping[str, Sequence[float]]
    higher_is_better: bool = True


def compare_scorers(
    inputs: Sequence[ScorerValues],
    *,
    alpha: float = ALPHA,
    seed: int | None = None,
    resamples: int = RESAMPLES,
) -> list[ScorerComparison]:
    """Compare every scorer, Holm-adjust across them, and give verdicts from adjusted p."""
    compared = [
        compare_scorer(
            one.scorer,
            one.kind,
            one.baseline,
            one.candidate,
            alpha=alpha,
            higher_is_better=one.higher_is_better,
            seed=seed,
            resamples=resamples,
            family=len(inputs),
        )
        for one in inputs
    ]
    adjusted = holm([c.p_value for c in compared])
    return [
        replace(c, p_adjusted=p, verdict=_verdict(c.difference, p, alpha, c.higher_is_better))
        for c, p in zip(compared, adjusted, strict=True)
    ]


def compare_scorer(
    scorer: str,
    kind: ScoreKind,
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    *,
    alpha: float = ALPHA,
    higher_is_better: bool = True,
    seed: int | None = None,
    resamples: int = RESAMPLES,
    family: int = 1,
) -> ScorerComparison:
    """Paired comparison of one scorer; `family` scorers share alpha (it sets the MDE)."""
    pairs = _pair(baseline, candidate)
    if pairs.items == 0:
        return _no_pairs(scorer, kind, higher_is_better, alpha)
    d = pairs.candidate - pairs.baseline
    rng = np.random.default_rng(_seed(d) if seed is None else seed)
    method, p, discordant = _test(kind, pairs, d, rng, resamples)
    low, high = bootstrap_interval(d, rng, alpha=alpha, resamples=resamples)
    difference = float(d.mean())
    return ScorerComparison(
        scorer=scorer,
        kind=kind,
        method=method,
        items=pairs.items,
        repeats=pairs.repeats,
        baseline=float(pairs.baseline.mean()),
        candidate=float(pairs.candidate.mean()),
        difference=difference,
        ci_low=low,
        ci_high=high,
        p_value=p,
        p_adjusted=p,
        effect_size=effect_size(d),
        mde=_mde(kind, pairs, d, alpha / family),
        verdict=_verdict(difference, p, alpha, higher_is_better),
        higher_is_better=higher_is_better,
        discordant=discordant,
        alpha=alpha,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def mcnemar_exact(baseline_only: int, candidate_only: int) -> float:
    """Two-sided exact McNemar p-value from the two counts of discordant pairs."""
    m = baseline_only + candidate_only
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(baseline_only, candidate_only) + 1))
    return min(1.0, 2 * tail / (1 << m))


def sign_flip_p(d: Floats, rng: np.random.Generator, *, resamples: int = RESAMPLES) -> float:
    """Two-sided p-value of mean(d) = 0 by flipping the signs of the per-item differences."""
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    # sums equal in exact arithmetic must tie despite rounding (discrete scores tie often)
    threshold = abs(nonzero.sum()) - 1e-9 * float(np.abs(nonzero).sum())
    if nonzero.size <= EXACT_LIMIT:
        return float(np.mean(np.abs(_all_signs(nonzero.size) @ nonzero) >= threshold))
    hits = np.count_nonzero(
        np.abs(_random_signs(rng, resamples, nonzero.size) @ nonzero) >= threshold
    )
    return (1 + int(hits)) / (1 + resamples)


def bootstrap_interval(
    d: Floats, rng: np.random.Generator, *, alpha: float = ALPHA, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap interval over items of the mean difference."""
    n = d.size
    if n < 2:
        return -math.inf, math.inf
    center = float(d.mean())
    means = d[rng.integers(0, n, size=(resamples, n), dtype=np.int32)].mean(axis=1)
    # a bootstrap mean varies by (n-1)/n of the unbiased variance: widen to match it
    spread = (means - center) * math.sqrt(n / (n - 1))
    low, high = np.quantile(spread, [alpha / 2, 1 - alpha / 2])
    return center + float(low), center + float(high)


def effect_size(d: Floats) -> float:
    """Cohen's d_z of the per-item differences (0 for fewer than two; ±inf if all equal)."""
    if d.size < 2:
        return 0.0
    mean = float(d.mean())
    # equal values may still show a rounding-error spread; tiny ones may underflow to none
    sd = 0.0 if np.all(d == d[0]) else float(d.std(ddof=1))
    if sd > 0:
        return mean / sd
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


# --- the pieces ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pairs:
    """Per-item means of the items both runs scored, in item id order."""

    baseline: Floats
    candidate: Floats
    counts: NDArray[np.int64]  # values per item, baseline and candidate columns
    binary_values: bool  # every value is 0 or 1
    step: float  # the smallest move of a per-item difference (for the MDE floor)

    @property
    def items(self) -> int:
        return int(self.baseline.size)

    @property
    def repeats(self) -> float:
        return float(self.counts.mean()) if self.items else 0.0


def _pair(
    baseline: Mapping[str, Sequence[float]], candidate: Mapping[str, Sequence[float]]
) -> _Pairs:
    # non-finite values are treated like errors: absent, so no NaN reaches a verdict
    rows: list[tuple[list[float], list[float]]] = []
    for item in sorted(baseline.keys() & candidate.keys()):
        a = [float(v) for v in baseline[item] if math.isfinite(v)]
        b = [float(v) for v in candidate[item] if math.isfinite(v)]
        if a and b:
            rows.append((a, b))
    values = np.array([v for a, b in rows for v in (*a, *b)], dtype=np.float64)
    counts = np.array([(len(a), len(b)) for a, b in rows], dtype=np.int64).reshape(-1, 2)
    distinct = np.unique(values)
    gap = float(np.diff(distinct).min()) if distinct.size > 1 else 1.0
    return _Pairs(
        baseline=np.array([sum(a) / len(a) for a, _ in rows], dtype=np.float64),
        candidate=np.array([sum(b) / len(b) for _, b in rows], dtype=np.float64),
        counts=counts,
        binary_values=bool(np.isin(values, (0.0, 1.0)).all()),
        step=gap / float(counts.mean()) if rows else gap,
    )


def _test(
    kind: ScoreKind, pairs: _Pairs, d: Floats, rng: np.random.Generator, resamples: int
) -> tuple[str, float, tuple[int, int] | None]:
    if kind == "binary" and pairs.binary_values and bool((pairs.counts == 1).all()):
        discordant = (int((d < 0).sum()), int((d > 0).sum()))
        return "mcnemar-exact", mcnemar_exact(*discordant), discordant
    exact = int(np.count_nonzero(d)) <= EXACT_LIMIT
    method = "sign-flip-exact" if exact else "sign-flip-monte-carlo"
    return method, sign_flip_p(d, rng, resamples=resamples), None


def _all_signs(m: int) -> Floats:
    patterns = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
    return (2 * patterns - 1).astype(np.float64)


def _random_signs(rng: np.random.Generator, rows: int, m: int) -> Floats:
    # random bytes unpacked to bits are several times faster than integers(0, 2)
    width = (m + 7) // 8
    raw = np.frombuffer(rng.bytes(rows * width), dtype=np.uint8).reshape(rows, width)
    bits = np.unpackbits(raw, axis=1)[:, :m]
    return (2.0 * bits - 1.0).astype(np.float64, copy=False)


def _seed(d: Floats) -> int:
    digest = hashlib.blake2b(np.ascontiguousarray(d).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _mde(kind: ScoreKind, pairs: _Pairs, d: Floats, alpha: float) -> float:
    binary = kind == "binary" and pairs.binary_values
    pass_rate = float(pairs.baseline.mean() + pairs.candidate.mean()) / 2 if binary else None
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    return detectable_difference(
        sd, d.size, alpha=alpha, step=pairs.step, pass_rate=pass_rate, repeats=pairs.repeats
    )


def _verdict(difference: float, p: float, alpha: float, higher_is_better: bool) -> Verdict:
    if not p < alpha or difference == 0:
        return "unchanged"
    return "improved" if (difference > 0) == higher_is_better else "regressed"


def _no_pairs(
    scorer: str, kind: ScoreKind, higher_is_better: bool, alpha: float
) -> ScorerComparison:
    return ScorerComparison(
        scorer=scorer,
        kind=kind,
        method="no-pairs",
        items=0,
        repeats=0.0,
        baseline=0.0,
        candidate=0.0,
        difference=0.0,
        ci_low=-math.inf,
        ci_high=math.inf,
        p_value=1.0,
        p_adjusted=1.0,
        effect_size=0.0,
        mde=math.inf,
        verdict="unchanged",
        higher_is_better=higher_is_better,
        alpha=alpha,
    )


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"={p:.3f}"
