"""An engine around a Python function: the in-memory seam for tests and benchmarks.

It never loads anything from an artifact, so it is no way around the ONNX-only rule: the
function is code the programmer wrote, passed in by the programmer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ferryman.signature import Signature

Predict = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


class FunctionEngine:
    """Serves ``function`` under ``signature``.

    >>> from ferryman.signature import Signature, TensorSpec
    >>> spec = TensorSpec(name="x", datatype="FP32", shape=(-1, 2))
    >>> runtime = FunctionEngine(Signature(inputs=(spec,), outputs=(spec,)), dict)
    >>> runtime.load()
    """

    def __init__(self, signature: Signature, function: Predict) -> None:
        self._signature = signature
        self._function = function
        self.is_loaded = False

    def load(self) -> None:
        self.is_loaded = True

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._function(inputs)

    def unload(self) -> None:
        self.is_loaded = False

    def metadata(self) -> Signature:
        return self._signature
