"""The variant gate: measure a variant with ONNX Runtime and decide whether it may serve.

A variant is measured on the validation set: output parity with the source model (max abs
diff), accuracy, file size and median latency at batch 1 and 32. The rules are the
:class:`GatePolicy`: a variant must stay within ``accuracy_drop_max_pct`` percentage points
of its baseline (the source model for ``onnx-fp32``, the fp32 variant for the others), and
a variant that claims to be the same model (fp32) must match the source within
``parity_max_abs_diff``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict

from ferryman.errors import InvalidInput

LATENCY_BATCH_SIZES = (1, 32)
_EVAL_BATCH = 512
_WARMUP_RUNS = 3


@dataclass(frozen=True)
class GatePolicy:
    """The pass rules of the gate and how hard it measures."""

    parity_max_abs_diff: float = 1e-4
    accuracy_drop_max_pct: float = 1.0
    latency_repeats_count: int = 20


@dataclass(frozen=True)
class EvaluationSet:
    """Validation inputs, their labels, and the scores the source model gave for them.

    ``output_name`` names the score output (probabilities or logits, one column per class)
    that accuracy is read from by argmax; ``source_scores`` are the source model's values
    of that output, for parity (None when the source cannot be run, e.g. a pickle).
    """

    input_name: str
    output_name: str
    inputs: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    source_scores: npt.NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if len(self.inputs) == 0 or len(self.inputs) != len(self.labels):
            raise InvalidInput(
                f"evaluation set has {len(self.inputs)} inputs and {len(self.labels)} labels; "
                "give the same non-zero number of each"
            )


class VariantReport(BaseModel):
    """What the gate measured for one variant, and its verdict; stored as the variant's gate."""

    model_config = ConfigDict(frozen=True)

    kind: str
    max_abs_diff: float | None
    accuracy: float
    baseline_accuracy: float
    size_bytes: int
    latency_ms_b1: float
    latency_ms_b32: float
    passed: bool
    reason: str


def measure_variant(
    kind: str,
    onnx_bytes: bytes,
    evaluation: EvaluationSet,
    policy: GatePolicy,
    baseline_accuracy: float | None = None,
) -> VariantReport:
    """Run the variant on the evaluation set and judge it against ``policy``.

    ``baseline_accuracy`` is the accuracy the variant must stay close to; None means the
    source model's scores (then parity is required as well, as for ``onnx-fp32``).
    """
    session = open_session(onnx_bytes)
    scores = score(session, evaluation)
    accuracy = accuracy_of(scores, evaluation.labels)
    max_abs_diff = None
    if evaluation.source_scores is not None:
        max_abs_diff = float(np.max(np.abs(scores - evaluation.source_scores)))
    parity_required = baseline_accuracy is None
    if baseline_accuracy is None:
        baseline_accuracy = (
            accuracy
            if evaluation.source_scores is None
            else accuracy_of(evaluation.source_scores, evaluation.labels)
        )
    latency = {
        size: median_latency_ms(session, evaluation, size, policy.latency_repeats_count)
        for size in LATENCY_BATCH_SIZES
    }
    passed, reason = _judge(accuracy, baseline_accuracy, max_abs_diff, parity_required, policy)
    return VariantReport(
        kind=kind,
        max_abs_diff=max_abs_diff,
        accuracy=accuracy,
        baseline_accuracy=baseline_accuracy,
        size_bytes=len(onnx_bytes),
        latency_ms_b1=latency[1],
        latency_ms_b32=latency[32],
        passed=passed,
        reason=reason,
    )


def open_session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def score(session: ort.InferenceSession, evaluation: EvaluationSet) -> npt.NDArray[np.float32]:
    """The variant's score output over all evaluation inputs, in batches."""
    parts: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(evaluation.inputs), _EVAL_BATCH):
        batch = evaluation.inputs[start : start + _EVAL_BATCH]
        outputs: list[Any] = session.run([evaluation.output_name], {evaluation.input_name: batch})
        parts.append(np.asarray(outputs[0], dtype=np.float32))
    return np.concatenate(parts)


def accuracy_of(scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def median_latency_ms(
    session: ort.InferenceSession, evaluation: EvaluationSet, batch_size: int, repeats: int
) -> float:
    """Median wall time of one ``session.run`` on ``batch_size`` validation inputs."""
    rows = np.resize(np.arange(len(evaluation.inputs)), batch_size)
    feed = {evaluation.input_name: np.ascontiguousarray(evaluation.inputs[rows])}
    for _ in range(_WARMUP_RUNS):
        session.run(None, feed)
    timings_ms = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        session.run(None, feed)
        timings_ms.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings_ms)


def _judge(
    accuracy: float,
    baseline_accuracy: float,
    max_abs_diff: float | None,
    parity_required: bool,
    policy: GatePolicy,
) -> tuple[bool, str]:
    drop_pct = (baseline_accuracy - accuracy) * 100
    if parity_required and max_abs_diff is not None and max_abs_diff > policy.parity_max_abs_diff:
        return False, (
            f"outputs differ from the source model by up to {max_abs_diff:.3g}; "
            f"the limit is {policy.parity_max_abs_diff:.3g}"
        )
    if drop_pct > policy.accuracy_drop_max_pct:
        return False, (
            f"accuracy {accuracy:.2%} is {drop_pct:.2f} pp below the baseline "
            f"{baseline_accuracy:.2%}; at most {policy.accuracy_drop_max_pct:g} pp is allowed"
        )
    return True, f"accuracy {accuracy:.2%} within {policy.accuracy_drop_max_pct:g} pp of baseline"
