"""Prediction drift (Jensen-Shannon of class counts), input drift (PSI) and the gate that holds."""

from __future__ import annotations

import math

import pytest

from ferryman.control.analysis.drift import (
    class_counts,
    grown,
    input_drift,
    jensen_shannon,
    population_stability,
)
from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.gates import Drift, Gates, Verdict, analyse
from ferryman.reference import Histogram


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        ({"0": 10, "1": 10}, {"0": 5, "1": 5}, 0.0),
        ({"0": 1}, {"1": 1}, 1.0),
        ({"0": 1, "1": 1}, {"0": 1}, 1.5 - 0.75 * math.log2(3)),  # the textbook 0.311
        ({}, {"0": 3}, 0.0),
    ],
)
def test_jensen_shannon_known_values(
    p: dict[str, float], q: dict[str, float], expected: float
) -> None:
    assert jensen_shannon(p, q) == pytest.approx(expected)
    assert jensen_shannon(q, p) == pytest.approx(expected)


def test_counts_from_a_replica_exposition_and_windows() -> None:
    text = (
        "# TYPE ferryman_predictions counter\n"
        'ferryman_predictions_total{class="0",model="m",variant="v1",version="1"} 7.0\n'
        'ferryman_predictions_total{class="3",model="m",variant="v1",version="1"} 2.0\n'
    )
    assert class_counts(text) == {"0": 7.0, "3": 2.0}
    assert grown({"0": 9, "3": 2}, {"0": 7, "3": 2}) == {"0": 2, "3": 0}
    assert grown({"0": 1}, {"0": 7, "3": 2}) == {"0": 1}  # the replica restarted


def healthy() -> Traffic:
    return Traffic(200, 0, {0.01: 200, math.inf: 200})


def test_drift_beyond_the_gate_holds_but_never_fails() -> None:
    gates = Gates(max_prediction_drift=0.2, min_predictions=100)
    held = analyse(gates, healthy(), Drift(divergence=0.6, predictions=150))
    assert held.verdict is Verdict.INCONCLUSIVE
    assert held.reasons == ("prediction drift 0.60 > 0.2 (Jensen-Shannon)",)
    assert analyse(gates, healthy(), Drift(0.6, predictions=50)).verdict is Verdict.PASS
    assert analyse(gates, healthy(), Drift(0.05, predictions=500)).verdict is Verdict.PASS
    assert analyse(Gates(), healthy(), Drift(0.9, predictions=500)).verdict is Verdict.PASS


def test_population_stability_known_values() -> None:
    reference = Histogram(edges=(0.0, 0.5, 1.0), fractions=(0.5, 0.5))
    assert population_stability(reference, [0.1, 0.9]) == 0.0
    # live 25/75 against 50/50: (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert population_stability(reference, [0.1, 0.9, 0.9, 0.9]) == pytest.approx(expected)
    # out of range counts in the end bins; an empty bin is floored, not infinite
    assert population_stability(reference, [-5.0, 7.0]) == 0.0
    assert math.isfinite(population_stability(reference, [0.9] * 10))


def test_input_drift_is_the_worst_summary_and_zero_without_data() -> None:
    flat = Histogram(edges=(0.0, 0.5, 1.0), fractions=(0.5, 0.5))
    live = {"mean_intensity": [0.1, 0.9], "contrast": [0.9, 0.9, 0.9, 0.1]}
    worst = input_drift({"mean_intensity": flat, "contrast": flat}, live)
    assert worst == pytest.approx(population_stability(flat, live["contrast"]))
    assert input_drift({"mean_intensity": flat}, {}) == 0.0
