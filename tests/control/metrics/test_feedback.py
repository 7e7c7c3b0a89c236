"""Model-level signals from the payload log: accuracy per variant and input drift (PSI)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.reference import Histogram, ReferenceData
from ferryman.registry import (
    CollectedPayload,
    DeploymentSpec,
    Feedback,
    Registry,
    VariantSpec,
)

TRAINING = Histogram(edges=(0.0, 0.5, 1.0), fractions=(0.5, 0.5))


def answered(n: int, prediction: str, intensity: float) -> CollectedPayload:
    return CollectedPayload(
        seq=n, request_id=f"r{n}", time=time.time(), status=200, latency_ms=1.0,
        predictions=[prediction], summaries={"mean_intensity": [intensity]},
    )  # fmt: skip


@pytest.fixture
def canary(registry: Registry, onnx_bytes: Callable[..., bytes]) -> Registry:
    """Endpoint m: v1 right 9 times in 10, v2 right 5 times in 10 and on drifted inputs."""
    reference = ReferenceData(input_summaries={"mean_intensity": TRAINING})
    registry.register("m", onnx_bytes(), "t", reference=reference)
    registry.register("m", onnx_bytes(seed_value=1.0), "t", reference=reference)
    variants = (VariantSpec(model="m", version=1, weight=50),
                VariantSpec(model="m", version=2, weight=50))  # fmt: skip
    registry.deployments.put(DeploymentSpec(endpoint="m", variants=variants), "t")
    baseline = [answered(n, "a", 0.25 if n % 2 else 0.75) for n in range(1, 11)]
    candidate = [answered(n, "a", 0.9) for n in range(11, 21)]
    registry.payloads.add("m", "v1", ("m", 1), "one", baseline)
    registry.payloads.add("m", "v2", ("m", 2), "two", candidate)
    truth = ["a"] * 9 + ["b"] + ["a"] * 5 + ["b"] * 5
    labels = [Feedback(request_id=f"r{n}", label=label) for n, label in enumerate(truth, 1)]
    registry.payloads.give_feedback(labels, "t")
    return registry


def test_a_rollout_sees_both_sides_accuracy_and_the_candidate_s_input_drift(
    canary: Registry,
) -> None:
    change = (VariantSpec(model="m", version=1), VariantSpec(model="m", version=2))
    rollout = canary.rollouts.create("m", change, {}, "t")
    signals = FeedbackSignals(canary).for_rollout(rollout)
    assert (signals.candidate_labelled, signals.candidate_accuracy) == (10, 0.5)
    assert (signals.baseline_labelled, signals.baseline_accuracy) == (10, 0.9)
    assert signals.input_drift_psi is not None
    assert signals.input_drift_psi > 2  # every input in one bin of a 50/50 histogram


def test_series_and_outcomes_per_variant(canary: Registry) -> None:
    signals = FeedbackSignals(canary)
    series = signals.series()
    assert series[("m", "v1")]["accuracy"] == pytest.approx(0.9)
    assert series[("m", "v1")]["input_drift_psi"] == pytest.approx(0.0)
    assert series[("m", "v2")]["accuracy"] == pytest.approx(0.5)
    assert series[("m", "v1")]["labelled"] == 10  # the sizes the alert rules' minimums read
    assert series[("m", "v1")]["input_rows"] > 0
    assert signals.accuracy_outcomes() == {("m", "v1"): (10, 9), ("m", "v2"): (10, 5)}
    assert set(signals.by_variant("m")) == {"v1", "v2"}


def test_requests_pinned_to_the_candidate_move_neither_its_input_drift_nor_its_accuracy(
    canary: Registry,
) -> None:
    """A client that names the candidate's version picks its variant: a flood of pinned
    requests on shifted inputs, labelled right, made its input drift and its accuracy
    whatever the client liked. Their records are kept, marked, and judged by no gate."""
    change = (VariantSpec(model="m", version=1), VariantSpec(model="m", version=2))
    rollout = canary.rollouts.create("m", change, {}, "t")
    before = FeedbackSignals(canary).for_rollout(rollout)
    flood = [
        answered(n, "b", 0.25 if n % 2 else 0.75).model_copy(update={"pinned": True})
        for n in range(21, 521)
    ]
    canary.payloads.add("m", "v2", ("m", 2), "two", flood)
    labels = [Feedback(request_id=f"r{n}", label="b") for n in range(21, 521)]
    canary.payloads.give_feedback(labels, "t")
    after = FeedbackSignals(canary).for_rollout(rollout)
    assert (after.candidate_labelled, after.candidate_accuracy) == (10, 0.5)
    assert after.input_drift_psi == pytest.approx(before.input_drift_psi)
    assert before.input_drift_psi is not None
    assert before.input_drift_psi > 2
    newest = canary.payloads.search("m", variant="v2", limit=1)
    assert [(r.request_id, r.pinned, r.labels) for r in newest] == [("r520", True, ["b"])]
