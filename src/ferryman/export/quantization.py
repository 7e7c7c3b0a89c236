"""INT8 variants through ONNX Runtime quantisation: static QDQ or dynamic.

Static QDQ (weights and activations in int8, ranges from a calibration pass over training
data) keeps convolutional nets fast and accurate; dynamic quantisation (weights in int8,
activation ranges computed per batch) suits models made of MatMul/Gemm. Models with neither
(scikit-learn trees and linear models in ``ai.onnx.ml``) get no INT8 variant.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from ferryman.errors import InvalidInput

CALIBRATION_BATCH = 32
_CONV_OPS = frozenset({"Conv", "ConvTranspose"})
_LINEAR_OPS = frozenset({"MatMul", "Gemm"})


class QuantizationMode(StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"


def choose_quantization(onnx_bytes: bytes) -> QuantizationMode | None:
    """Static for conv nets, dynamic for linear-heavy graphs, None when nothing to quantise."""
    op_types = {node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node}
    if op_types & _CONV_OPS:
        return QuantizationMode.STATIC
    if op_types & _LINEAR_OPS:
        return QuantizationMode.DYNAMIC
    return None


def quantize(
    onnx_bytes: bytes,
    mode: QuantizationMode,
    input_name: str,
    calibration: npt.NDArray[np.float32] | None = None,
) -> bytes:
    """Return the INT8 form of ``onnx_bytes``; static mode needs ``calibration`` inputs."""
    with tempfile.TemporaryDirectory(prefix="ferryman-quant-") as workdir:
        source = Path(workdir) / "fp32.onnx"
        prepared = Path(workdir) / "prepared.onnx"
        target = Path(workdir) / "int8.onnx"
        source.write_bytes(onnx_bytes)
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        if mode is QuantizationMode.STATIC:
            if calibration is None or len(calibration) == 0:
                raise InvalidInput("static INT8 quantisation needs calibration inputs; give some")
            quantize_static(
                prepared,
                target,
                ArrayCalibrationReader(input_name, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        else:
            quantize_dynamic(prepared, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


class ArrayCalibrationReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration inputs to ONNX Runtime's calibrator in batches."""

    def __init__(self, input_name: str, inputs: npt.NDArray[np.float32]) -> None:
        self._input_name = input_name
        self._inputs = inputs
        self._batches = self._iterate()

    def _iterate(self) -> Iterator[dict[str, npt.NDArray[np.float32]]]:
        for start in range(0, len(self._inputs), CALIBRATION_BATCH):
            batch = self._inputs[start : start + CALIBRATION_BATCH]
            yield {self._input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._iterate()
