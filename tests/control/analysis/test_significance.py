"""The A/B significance tests on synthetic outcomes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from ferryman.control.analysis.significance import Arm, compare_proportions, required_per_arm


def test_ninety_against_eighty_percent_with_two_thousand_each_is_decisive() -> None:
    result = compare_proportions(Arm(2000, 1800), Arm(2000, 1600))
    assert result.test == "z"
    assert result.difference == pytest.approx(-0.10)
    assert result.statistic == pytest.approx(-8.856, abs=1e-3)
    assert result.p_value < 0.001
    chi2, p_value, *_ = chi2_contingency([[1800, 200], [1600, 400]], correction=False)
    assert result.statistic**2 == pytest.approx(chi2)  # the same test, written two ways
    assert result.p_value == pytest.approx(p_value)


def test_equal_rates_are_not_significant() -> None:
    result = compare_proportions(Arm(2000, 1800), Arm(2000, 1800))
    assert (result.statistic, result.p_value, result.difference) == (0.0, 1.0, 0.0)


def test_all_successes_on_both_sides_differ_in_nothing() -> None:
    result = compare_proportions(Arm(500, 500), Arm(500, 500))
    assert result.test == "fisher"  # no failures expected: the normal approximation fails
    assert result.p_value == 1.0


def test_small_samples_use_fisher_s_exact_test() -> None:
    result = compare_proportions(Arm(10, 9), Arm(10, 2))
    assert result.test == "fisher"
    assert result.p_value == pytest.approx(0.005477, abs=1e-5)


def test_an_arm_without_trials_cannot_be_tested() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        compare_proportions(Arm(0, 0), Arm(10, 5))


@pytest.mark.parametrize(
    ("rate", "effect", "expected"),
    [(0.5, 0.1, 388), (0.9, 0.05, 686), (0.1, 0.05, 686), (0.99, 0.01, 2319)],
)
def test_required_sample_size_matches_the_textbook_formula(
    rate: float, effect: float, expected: int
) -> None:
    """Fleiss' normal approximation: 0.5 vs 0.6 at alpha 0.05 and power 0.8 needs 388."""
    assert required_per_arm(rate, effect, alpha=0.05, power=0.8) == expected


def test_required_sample_size_delivers_its_power() -> None:
    """Simulated: with the required n per arm, a real difference of min_effect is found
    about as often as the power promises (0.8), and equal arms rarely (about alpha)."""
    n = required_per_arm(0.9, 0.05, alpha=0.05, power=0.8)
    generator = np.random.default_rng(7)
    found = sum(
        compare_proportions(
            Arm(n, generator.binomial(n, 0.90)), Arm(n, generator.binomial(n, 0.85))
        ).p_value
        < 0.05
        for _ in range(400)
    )
    null = sum(
        compare_proportions(
            Arm(n, generator.binomial(n, 0.90)), Arm(n, generator.binomial(n, 0.90))
        ).p_value
        < 0.05
        for _ in range(400)
    )
    assert 0.74 <= found / 400 <= 0.86
    assert null / 400 <= 0.08
