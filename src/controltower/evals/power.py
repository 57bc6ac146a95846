"""The smallest difference a paired comparison can detect (its MDE), at a given power.

The comparison tests the mean of the per-item differences `d_i` with a sign-flip test
(McNemar's exact test is the same test on pass/fail). Two things make the textbook
`(z_a + z_b) * sd / sqrt(n)` too optimistic, and both are accounted for here:

- The sign-flip test's null spread is the root mean square of `d_i`, not their standard
  deviation, so it widens with the true difference itself: `sd^2 + delta^2`.
- A pass rate's variance depends on the rate: moving it by delta toward 50% adds
  `(delta*|2p - 1| - delta^2) / repeats` to the variance of `d_i` (the candidate side's
  Bernoulli variance at p - delta instead of p). The direction toward 50% is the harder
  one to detect, and for pass rates above 50% it is the regression a gate looks for.

So delta solves `delta = ratio * sd(delta)`, with `ratio` from
`delta*sqrt(n) - z_a*sqrt(sd^2 + delta^2) = z_b*sd`; both cases have a closed form.
"""

from __future__ import annotations

import math
from statistics import NormalDist

ALPHA = 0.05
POWER = 0.8


def detectable_difference(
    sd: float,
    n: int,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
    step: float = 0.0,
    pass_rate: float | None = None,
    repeats: float = 1.0,
) -> float:
    """Smallest |true mean difference| found with `power` by a two-sided test at `alpha`.

    `sd` is the standard deviation of the per-item differences and `n` the items; give
    `pass_rate` and `repeats` (values per item per side) for pass/fail scores. The result is
    never below `k * step / n`, `k` items moving one `step` the same way being the fewest
    that can reach alpha; it is inf when n < k or, for pass/fail, above 1.
    """
    fewest = fewest_items(alpha)
    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(power)
    if n < fewest or n <= z_a**2:
        return math.inf
    ratio = (z_b * math.sqrt(n) + z_a * math.sqrt(n + z_b**2 - z_a**2)) / (n - z_a**2)
    floor = fewest * step / n
    if pass_rate is None:
        return max(ratio * sd, floor)
    # delta^2 = ratio^2 * (sd^2 + (delta*g - delta^2) / repeats), a quadratic in delta
    growth = ratio**2 / repeats
    a, b, c = 1 + growth, growth * abs(2 * pass_rate - 1), ratio**2 * sd**2
    delta = (b + math.sqrt(b * b + 4 * a * c)) / (2 * a)
    return max(delta, floor) if delta <= 1 else math.inf


def fewest_items(alpha: float) -> int:
    """The fewest non-zero differences with which a two-sided sign test can reach alpha."""
    return math.floor(math.log2(2 / alpha)) + 1  # all k of one sign: p = 2 * 0.5**k < alpha
