"""Produce a version's variants: measure everything first, then write them in one pass.

Planning (quantising, measuring, judging) happens before anything is written, so a failure
there leaves the registry as it was; writing adds each variant with its gate report and its
status (``passed`` or ``rejected``: a rejected variant is kept, with the reason, and can
never be deployed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ferryman.export.gate import EvaluationSet, GatePolicy, VariantReport, measure_variant
from ferryman.export.quantization import QuantizationMode, quantize
from ferryman.registry import Registry, VariantRecord, VariantStatus

logger = logging.getLogger(__name__)

FP32 = "onnx-fp32"
INT8 = "onnx-int8"


@dataclass(frozen=True)
class PlannedVariant:
    kind: str
    onnx_bytes: bytes
    report: VariantReport
    quantization: QuantizationMode | None = None


@dataclass(frozen=True)
class ExportPlan:
    """The variants of one version, measured and judged, not yet written."""

    variants: tuple[PlannedVariant, ...]

    def report(self, kind: str) -> VariantReport | None:
        return next((v.report for v in self.variants if v.kind == kind), None)


def plan_variants(
    fp32_bytes: bytes,
    evaluation: EvaluationSet,
    policy: GatePolicy,
    quantization: QuantizationMode | None,
    calibration: npt.NDArray[np.float32] | None = None,
) -> ExportPlan:
    """Measure ``onnx-fp32`` against the source and, if asked, quantise and measure INT8."""
    fp32 = measure_variant(FP32, fp32_bytes, evaluation, policy)
    planned = [PlannedVariant(FP32, fp32_bytes, fp32)]
    if quantization is not None:
        int8_bytes = quantize(fp32_bytes, quantization, evaluation.input_name, calibration)
        int8 = measure_variant(INT8, int8_bytes, evaluation, policy, fp32.accuracy)
        planned.append(PlannedVariant(INT8, int8_bytes, int8, quantization))
    for variant in planned:
        logger.info("%s: %s (%s)", variant.kind, _verdict(variant.report), variant.report.reason)
    return ExportPlan(tuple(planned))


def export_variants(
    registry: Registry, model: str, version: int, plan: ExportPlan, actor: str
) -> list[VariantRecord]:
    """Attach every planned variant to ``model`` v``version`` with its gate and status."""
    records = []
    for variant in plan.variants:
        extra = {"quantization": variant.quantization}
        records.append(
            registry.add_variant(
                model,
                version,
                variant.kind,
                variant.onnx_bytes,
                actor,
                gate={**variant.report.model_dump(mode="json"), **extra},
                status=VariantStatus.PASSED if variant.report.passed else VariantStatus.REJECTED,
            )
        )
    return records


def _verdict(report: VariantReport) -> str:
    return "passed" if report.passed else "REJECTED"
