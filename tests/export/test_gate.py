"""The variant gate: parity, accuracy drop, size and latency, on tiny hand-built models."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from ferryman.errors import InvalidInput
from ferryman.export import EvaluationSet, GatePolicy, measure_variant


def linear_softmax(weights: np.ndarray) -> bytes:
    """probabilities = softmax(features @ weights), batch axis dynamic."""
    rows, cols = weights.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", cols])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [rows, cols], weights.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    serialized: bytes = model.SerializeToString()
    return serialized


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    return probabilities


@pytest.fixture
def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 3)).astype(np.float32)
    inputs = rng.normal(size=(200, 6)).astype(np.float32)
    labels = np.argmax(inputs @ weights, axis=1).astype(np.int64)
    return weights, inputs, labels


def test_an_exact_variant_passes_with_its_measurements(problem: tuple[np.ndarray, ...]) -> None:
    weights, inputs, labels = problem
    evaluation = EvaluationSet(
        "features", "probabilities", inputs, labels, softmax(inputs @ weights)
    )
    report = measure_variant("onnx-fp32", linear_softmax(weights), evaluation, GatePolicy())
    assert report.passed
    assert report.accuracy == 1.0
    assert report.max_abs_diff is not None
    assert report.max_abs_diff <= 1e-6
    assert report.size_bytes == len(linear_softmax(weights))
    assert report.latency_ms_b1 > 0
    assert report.latency_ms_b32 > 0


def test_fp32_parity_beyond_the_limit_is_rejected(problem: tuple[np.ndarray, ...]) -> None:
    weights, inputs, labels = problem
    nudged = weights.copy()
    nudged[:, 0] += 1e-2  # the same argmax almost everywhere, different probabilities
    evaluation = EvaluationSet(
        "features", "probabilities", inputs, labels, softmax(inputs @ weights)
    )
    report = measure_variant("onnx-fp32", linear_softmax(nudged), evaluation, GatePolicy())
    assert not report.passed
    assert "differ from the source model" in report.reason


@pytest.mark.parametrize(("drop_rows", "passed"), [(1, True), (6, False)])
def test_accuracy_drop_threshold_against_the_baseline(
    problem: tuple[np.ndarray, ...], drop_rows: int, passed: bool
) -> None:
    weights, inputs, labels = problem
    wrong = labels.copy()
    wrong[:drop_rows] = (wrong[:drop_rows] + 1) % 3  # 1 row = 0.5 pp, 6 rows = 3 pp
    evaluation = EvaluationSet("features", "probabilities", inputs, wrong)
    report = measure_variant(
        "onnx-int8", linear_softmax(weights), evaluation, GatePolicy(), baseline_accuracy=1.0
    )
    assert report.passed is passed
    assert report.baseline_accuracy == 1.0
    if not passed:
        assert "3.00 pp below the baseline" in report.reason


def test_an_empty_evaluation_set_is_refused() -> None:
    with pytest.raises(InvalidInput, match="same non-zero number"):
        EvaluationSet("x", "y", np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
