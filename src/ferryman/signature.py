"""What a version takes and gives: named tensors with Open Inference Protocol datatypes.

A signature is recorded with every version (read from the ONNX file at registration) and
is what the data plane validates requests against before a model runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "BYTES",
]

DYNAMIC = -1
"""A dimension of any size (a batch axis, or any symbolic ONNX dimension)."""


class TensorSpec(BaseModel):
    """One named input or output: its datatype and shape (``-1`` for a dynamic axis)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=256)
    datatype: Datatype
    shape: tuple[int, ...] | None = Field(description="None when the model leaves the rank open")

    def describe(self) -> str:
        """Render as people read it: ``pixels FP32 [-1, 1, 8, 8]``."""
        dims = "?" if self.shape is None else ", ".join(map(str, self.shape))
        return f"{self.name} {self.datatype} [{dims}]"


class Signature(BaseModel):
    """The inputs and outputs of a version, in graph order."""

    model_config = ConfigDict(frozen=True)

    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
