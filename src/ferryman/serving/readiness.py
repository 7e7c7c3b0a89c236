"""Semantic readiness: a replica is ready only when it answers its golden requests correctly."""

from __future__ import annotations

import numpy as np

from ferryman.engines import ModelEngine
from ferryman.errors import FerrymanError
from ferryman.protocol.codecs import to_array
from ferryman.reference import GoldenRequest, ReferenceData


def replay_golden(runtime: ModelEngine, reference: ReferenceData | None) -> str | None:
    """Run every golden request; return why the model is not ready, or None when it is."""
    if reference is None:
        return None
    for index, golden in enumerate(reference.golden):
        try:
            reason = _replay_one(runtime, golden)
        except FerrymanError as exc:
            reason = exc.message
        except Exception as exc:  # the model itself failed: that is the reason
            reason = f"the model raised {type(exc).__name__}: {str(exc)[:300]}"
        if reason is not None:
            return f"golden request {index + 1} of {len(reference.golden)}: {reason}"
    return None


def _replay_one(runtime: ModelEngine, golden: GoldenRequest) -> str | None:
    inputs = {
        name: to_array(tensor.datatype, tensor.shape, tensor.data)
        for name, tensor in golden.inputs.items()
    }
    outputs = runtime.predict(inputs)
    for name, tensor in golden.outputs.items():
        if name not in outputs:
            return f"the model gave no output {name!r}"
        got = np.asarray(outputs[name])
        want = to_array(tensor.datatype, tensor.shape, tensor.data)
        if got.shape != want.shape:
            return f"output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}"
        if got.size == 0:
            continue
        if want.dtype == object:  # text answers must be equal
            if got.ravel().tolist() != want.ravel().tolist():
                return f"output {name!r} differs from the recorded text answer"
            continue
        error = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = int(np.argmax(error))
        if not error.flat[worst] <= golden.atol:
            return (
                f"output {name!r} differs from the recorded answer by {error.flat[worst]:.6g} "
                f"at flat index {worst} (tolerance {golden.atol:g}); the variant does not "
                "reproduce its version"
            )
    return None
