"""Engines: what runs a variant's model, behind one small contract (``base.ModelEngine``).

``OnnxEngine`` (ONNX Runtime, the only executable path for artifacts) and
``FunctionEngine`` (a Python function the programmer hands in; the in-memory seam that
tests and benchmarks use) both satisfy :class:`ModelEngine`.
"""

from ferryman.engines.base import ModelEngine

__all__ = ["ModelEngine"]
