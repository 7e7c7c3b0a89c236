"""Export: turn a trained model into servable variants, each behind a measured gate.

``onnx-fp32`` comes from ``torch.onnx`` (or skl2onnx); ``onnx-int8`` from ONNX Runtime
quantisation. Every variant records its parity with the source model, its accuracy on the
validation set, its size and its latency at batch 1 and 32; a variant that falls short of
the :class:`GatePolicy` is stored as ``rejected`` with the reason, and is never deployed.
"""

from __future__ import annotations

from ferryman.export.gate import EvaluationSet, GatePolicy, VariantReport, measure_variant
from ferryman.export.quantization import QuantizationMode, choose_quantization, quantize
from ferryman.export.variants import ExportPlan, export_variants, plan_variants

__all__ = [
    "EvaluationSet",
    "ExportPlan",
    "GatePolicy",
    "QuantizationMode",
    "VariantReport",
    "choose_quantization",
    "export_variants",
    "measure_variant",
    "plan_variants",
    "quantize",
]
