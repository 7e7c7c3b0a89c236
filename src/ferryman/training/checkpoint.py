"""Checkpoints as safetensors: named arrays plus a JSON state, never a pickle.

A checkpoint holds what a run needs to continue exactly where it stopped: weights,
optimiser moments, random-generator states (as uint8 arrays) and plain values such as the
epoch and the early-stopping counters (JSON in the safetensors metadata). Reading parses
the safetensors header only; nothing in a checkpoint can run code.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load, save

from ferryman.errors import ArtifactCorrupt

_STATE_KEY = "ferryman.state"
_HEADER_LENGTH_BYTES = 8


@dataclass(frozen=True)
class CheckpointData:
    """The arrays and JSON-able state of one checkpoint."""

    step: int
    arrays: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)


def encode_checkpoint(checkpoint: CheckpointData) -> bytes:
    """The safetensors bytes of ``checkpoint``."""
    state = json.dumps({"step": checkpoint.step, "state": checkpoint.state}, sort_keys=True)
    arrays = {name: np.ascontiguousarray(array) for name, array in checkpoint.arrays.items()}
    data: bytes = save(arrays, metadata={_STATE_KEY: state})
    return data


def decode_checkpoint(data: bytes) -> CheckpointData:
    """Read back what :func:`encode_checkpoint` wrote; raise ArtifactCorrupt on anything else."""
    try:
        header = _header(data)
        stored = json.loads(header["__metadata__"][_STATE_KEY])
        arrays = load(data)
    except (KeyError, TypeError, ValueError, struct.error, SafetensorError) as exc:
        raise ArtifactCorrupt(
            f"checkpoint is not a Ferryman safetensors checkpoint ({exc}); "
            "resume from an earlier checkpoint or start a new run"
        ) from None
    return CheckpointData(step=int(stored["step"]), arrays=arrays, state=stored["state"])


def _header(data: bytes) -> dict[str, Any]:
    (length,) = struct.unpack("<Q", data[:_HEADER_LENGTH_BYTES])
    if length > len(data) - _HEADER_LENGTH_BYTES:
        raise ValueError(f"header length {length} exceeds the file")
    header: dict[str, Any] = json.loads(data[_HEADER_LENGTH_BYTES : _HEADER_LENGTH_BYTES + length])
    return header
