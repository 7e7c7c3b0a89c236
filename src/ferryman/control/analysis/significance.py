"""Is one arm's success proportion different from the other's? Two-sided tests, pure.

An A/B test compares two proportions — answers without error per request, or correct
answers per feedback label. With enough data in every cell of the 2x2 table (each expected
count ≥ 5) the pooled two-proportion z-test is the standard one (its z² is Pearson's
chi-square without continuity correction); with less, its normal approximation is poor and
Fisher's exact test is used instead. :func:`required_per_arm` is the sample size each arm
needs to detect a given difference with a given power (normal approximation, Fleiss).

Normal tails come from the standard library (``math.erfc``, ``statistics.NormalDist``);
SciPy, whose import takes most of a second, is imported only when Fisher's test runs, so
the CLI and the API start without it.

>>> result = compare_proportions(Arm(2000, 1800), Arm(2000, 1600))
>>> result.test, result.p_value < 0.001, round(result.difference, 2)
('z', True, -0.1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

MIN_EXPECTED = 5.0
"""Smallest expected cell count for which the z-test's normal approximation is trusted."""


@dataclass(frozen=True)
class Arm:
    """One arm of a test: trials and successes among them."""

    trials: float
    successes: float

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials > 0 else None


@dataclass(frozen=True)
class Comparison:
    """The test used, its statistic (z, or Fisher's odds ratio), the two-sided p-value, and
    the candidate's rate minus the baseline's."""

    test: Literal["z", "fisher"]
    statistic: float
    p_value: float
    difference: float


def compare_proportions(baseline: Arm, candidate: Arm) -> Comparison:
    """Two-sided test of "the two arms succeed equally often" (both arms need trials)."""
    if baseline.trials <= 0 or candidate.trials <= 0:
        raise ValueError("both arms need at least one trial")
    difference = candidate.successes / candidate.trials - baseline.successes / baseline.trials
    trials = baseline.trials + candidate.trials
    pooled = (baseline.successes + candidate.successes) / trials
    smallest = min(baseline.trials, candidate.trials) * min(pooled, 1 - pooled)
    if smallest < MIN_EXPECTED:
        table = [
            [round(baseline.successes), round(baseline.trials - baseline.successes)],
            [round(candidate.successes), round(candidate.trials - candidate.successes)],
        ]
        from scipy import stats  # noqa: PLC0415 - heavy, and needed only for small samples

        odds_ratio, p_value = stats.fisher_exact(table, alternative="two-sided")
        return Comparison("fisher", float(odds_ratio), float(p_value), difference)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / baseline.trials + 1 / candidate.trials))
    z = difference / spread
    return Comparison("z", z, _two_sided_p(z), difference)


def required_per_arm(rate: float, effect: float, alpha: float, power: float) -> int:
    """Trials each arm needs for a two-sided test at ``alpha`` to detect a change of
    ``effect`` from ``rate`` with probability ``power``.

    The change is taken towards 0.5, where the variance is largest, so the answer holds for
    a change either way.

    >>> required_per_arm(0.9, 0.05, 0.05, 0.8)
    686
    """
    if not (0 < alpha < 1 and 0 < power < 1 and 0 < effect < 1):
        raise ValueError("alpha, power and effect must lie in (0, 1)")
    rate = min(max(rate, 0.0), 1.0)
    other = rate + effect if rate < 0.5 else rate - effect
    other = min(max(other, 0.0), 1.0)
    mean = (rate + other) / 2
    z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
    z_power = NormalDist().inv_cdf(power)
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(
        rate * (1 - rate) + other * (1 - other)
    )
    return max(1, math.ceil(float(spread / abs(other - rate)) ** 2))


def _two_sided_p(z: float) -> float:
    """P(|Z| ≥ |z|) for a standard normal Z; erfc keeps tiny p-values exact."""
    return math.erfc(abs(z) / math.sqrt(2))
