"""Reference data for monitoring, built from the validation set at registration.

Golden requests are a handful of validation inputs with the outputs the fp32 ONNX model
gave for them; input summaries are histograms (per feature for tables, of per-image mean
intensity for images); the prediction summary is the share of validation predictions per
class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ferryman.export.gate import EvaluationSet, open_session
from ferryman.reference import (
    IMAGE_SUMMARIES,
    GoldenRequest,
    Histogram,
    ReferenceData,
    Tensor,
    row_summaries,
)

HISTOGRAM_BINS = 10
GOLDEN_COUNT = 8
GOLDEN_MARGIN = 1.5


def build_reference(
    onnx_bytes: bytes,
    evaluation: EvaluationSet,
    labels: tuple[str, ...],
    input_summaries: dict[str, Histogram],
    golden_count: int = GOLDEN_COUNT,
) -> ReferenceData:
    """Golden requests answered by ``onnx_bytes``, plus the summaries, for one version."""
    session = open_session(onnx_bytes)
    golden = []
    for row in evaluation.inputs[:golden_count]:
        batch = row[None, ...]
        outputs: list[Any] = session.run(None, {evaluation.input_name: batch})
        names = [output.name for output in session.get_outputs()]
        golden.append(
            GoldenRequest(
                inputs={evaluation.input_name: _tensor(batch)},
                outputs={
                    name: _tensor(np.asarray(value))
                    for name, value in zip(names, outputs, strict=True)
                },
            )
        )
    scores = np.asarray(
        session.run([evaluation.output_name], {evaluation.input_name: evaluation.inputs})[0]
    )
    predicted = np.bincount(np.argmax(scores, axis=1), minlength=len(labels))
    shares = predicted / max(1, len(scores))
    inputs = np.asarray(evaluation.inputs)
    ranges = {}
    if inputs.size and inputs.dtype.kind in "biuf":
        ranges[evaluation.input_name] = (float(inputs.min()), float(inputs.max()))
    return ReferenceData(
        golden=tuple(golden),
        input_summaries=input_summaries,
        input_ranges=ranges,
        prediction_summary={
            label: float(share) for label, share in zip(labels, shares, strict=True)
        },
        labels=labels,
    )


def histogram(values: npt.NDArray[Any]) -> Histogram:
    """Equal-width bins over the values' range; a constant column gets one bin."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return Histogram(edges=(low, low + 1.0), fractions=(1.0,))
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
    return Histogram(
        edges=tuple(float(edge) for edge in edges),
        fractions=tuple(float(count) / len(values) for count in counts),
    )


def image_summaries(images: npt.NDArray[np.float32]) -> dict[str, Histogram]:
    """Per-image mean intensity and contrast (standard deviation)."""
    return {
        name: histogram(values) for name, values in row_summaries(IMAGE_SUMMARIES, images).items()
    }


def feature_summaries(
    features: npt.NDArray[np.float32], names: tuple[str, ...]
) -> dict[str, Histogram]:
    return {name: histogram(values) for name, values in row_summaries(names, features).items()}


def _tensor(array: npt.NDArray[Any]) -> Tensor:
    if array.dtype.kind == "i":
        return Tensor(
            datatype="INT64", shape=array.shape, data=tuple(int(v) for v in array.ravel())
        )
    return Tensor(datatype="FP32", shape=array.shape, data=tuple(float(v) for v in array.ravel()))


def fit_golden_tolerance(reference: ReferenceData, variants: Sequence[bytes]) -> ReferenceData:
    """Widen each golden request's tolerance to cover what every servable variant answers.

    Golden requests hold the fp32 answers; an INT8 variant that passed its accuracy gate
    answers a little differently, and its replicas must still pass the readiness replay.
    Each request keeps its own tolerance: the largest deviation seen, times a margin.
    """
    sessions = [open_session(onnx_bytes) for onnx_bytes in variants]
    golden = []
    for request in reference.golden:
        feed = {name: _array(tensor) for name, tensor in request.inputs.items()}
        worst = 0.0
        for session in sessions:
            names = [output.name for output in session.get_outputs()]
            for name, value in zip(names, session.run(None, feed), strict=True):
                if name in request.outputs:
                    error = np.abs(np.asarray(value, np.float64) - _array(request.outputs[name]))
                    worst = max(worst, float(error.max(initial=0.0)))
        golden.append(request.model_copy(update={"atol": max(request.atol, GOLDEN_MARGIN * worst)}))
    return reference.model_copy(update={"golden": tuple(golden)})


def _array(tensor: Tensor) -> npt.NDArray[Any]:
    dtype = np.int64 if tensor.datatype == "INT64" else np.float32
    return np.asarray(tensor.data, dtype=dtype).reshape(tensor.shape)
