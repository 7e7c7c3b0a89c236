"""Accuracy from feedback and input drift as rollout gates (pure analysis)."""

from __future__ import annotations

import math

from ferryman.control.metrics.feedback import ModelSignals
from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.gates import Gates, Verdict, analyse

HEALTHY = Traffic(200, 0, {0.01: 200, math.inf: 200})


def signals(candidate: float, baseline: float = 0.95, labelled: int = 500) -> ModelSignals:
    return ModelSignals(labelled, candidate, labelled, baseline)


def test_worse_accuracy_fails_although_http_is_perfect() -> None:
    gates = Gates(max_accuracy_drop=0.05)
    analysis = analyse(gates, HEALTHY, signals=signals(candidate=0.80))
    assert analysis.verdict is Verdict.FAIL
    assert analysis.success_rate == 1
    assert "accuracy 0.800 < baseline 0.950 - 0.05" in analysis.reasons[0]
    assert analysis.accuracy == 0.80


def test_an_absolute_floor_fails_below_it() -> None:
    analysis = analyse(Gates(min_accuracy=0.9), HEALTHY, signals=signals(candidate=0.85))
    assert analysis.verdict is Verdict.FAIL
    assert analysis.reasons == ("accuracy 0.850 < 0.9 (500 labelled)",)


def test_as_good_as_the_baseline_within_the_margin_passes() -> None:
    gates = Gates(min_accuracy=0.9, max_accuracy_drop=0.02)
    assert analyse(gates, HEALTHY, signals=signals(candidate=0.94)).verdict is Verdict.PASS


def test_too_few_labels_holds_and_never_promotes() -> None:
    gates = Gates(max_accuracy_drop=0.02, min_labelled=100)
    few = ModelSignals(candidate_labelled=40, candidate_accuracy=1.0, baseline_labelled=900,
                       baseline_accuracy=0.9)  # fmt: skip
    analysis = analyse(gates, HEALTHY, signals=few)
    assert analysis.verdict is Verdict.INCONCLUSIVE
    assert "40 labelled candidate rows < 100" in analysis.reasons[0]
    assert analyse(gates, HEALTHY).verdict is Verdict.INCONCLUSIVE  # no signals at all
    unlabelled_baseline = ModelSignals(500, 0.9, 0, None)
    assert analyse(gates, HEALTHY, signals=unlabelled_baseline).verdict is Verdict.INCONCLUSIVE


def test_http_failures_and_accuracy_are_reported_together() -> None:
    broken = Traffic(200, 50, {0.01: 200, math.inf: 200})
    analysis = analyse(Gates(max_accuracy_drop=0.01), broken, signals=signals(candidate=0.5))
    assert analysis.verdict is Verdict.FAIL
    assert len(analysis.reasons) == 2


def test_input_drift_beyond_the_gate_holds() -> None:
    gates = Gates(max_input_drift_psi=0.2)
    drifting = ModelSignals(input_drift_psi=0.45)
    analysis = analyse(gates, HEALTHY, signals=drifting)
    assert analysis.verdict is Verdict.INCONCLUSIVE
    assert analysis.reasons == ("input drift PSI 0.45 > 0.2 against the training data",)
    assert (
        analyse(gates, HEALTHY, signals=ModelSignals(input_drift_psi=0.05)).verdict is Verdict.PASS
    )


def test_without_quality_gates_signals_change_nothing() -> None:
    assert analyse(Gates(), HEALTHY, signals=signals(candidate=0.1)).verdict is Verdict.PASS


def rated(candidate: float, baseline: float = 0.8, count: int = 200) -> ModelSignals:
    return ModelSignals(
        candidate_rated=count, candidate_thumbs_up_rate=candidate,
        baseline_rated=count, baseline_thumbs_up_rate=baseline,
    )  # fmt: skip


def test_a_thumbs_up_rate_below_the_baseline_fails() -> None:
    gates = Gates(max_thumbs_up_drop=0.1)
    analysis = analyse(gates, HEALTHY, signals=rated(candidate=0.3))
    assert analysis.verdict is Verdict.FAIL
    assert analysis.reasons == ("thumbs-up rate 0.300 < baseline 0.800 - 0.1 (200 vs 200 rated)",)
    assert (analysis.thumbs_up_rate, analysis.rated) == (0.3, 200)
    assert analysis.figures()["thumbs_up_rate"] == 0.3
    assert analyse(gates, HEALTHY, signals=rated(candidate=0.75)).verdict is Verdict.PASS


def test_a_thumbs_up_floor_fails_below_it() -> None:
    analysis = analyse(Gates(min_thumbs_up_rate=0.5), HEALTHY, signals=rated(candidate=0.4))
    assert analysis.reasons == ("thumbs-up rate 0.400 < 0.5 (200 rated)",)


def test_too_few_ratings_hold_and_never_promote() -> None:
    gates = Gates(max_thumbs_up_drop=0.1, min_rated=30)
    analysis = analyse(gates, HEALTHY, signals=rated(candidate=1.0, count=29))
    assert analysis.verdict is Verdict.INCONCLUSIVE
    assert analysis.reasons == ("29 rated candidate completions < 30: thumbs-up rate not judged",)
    assert analyse(gates, HEALTHY).verdict is Verdict.INCONCLUSIVE  # no ratings at all
    unrated_baseline = ModelSignals(candidate_rated=90, candidate_thumbs_up_rate=0.9)
    held = analyse(gates, HEALTHY, signals=unrated_baseline)
    assert held.reasons == ("0 rated baseline completions < 30: thumbs-up rate not compared",)


def test_ratings_change_nothing_without_a_thumbs_gate() -> None:
    analysis = analyse(Gates(), HEALTHY, signals=rated(candidate=0.0))
    assert analysis.verdict is Verdict.PASS
    assert analysis.rated is None
