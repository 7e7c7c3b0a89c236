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


def incompatibilities(current: Signature, candidate: Signature) -> tuple[str, ...]:
    """What a client of ``current`` sends that ``candidate`` would refuse, one line each.

    Compatible (an empty answer) means: every input of ``current`` is an input of
    ``candidate`` with the same datatype and a compatible shape (same rank, each dimension
    equal, or dynamic on either side; an open rank fits anything), and ``candidate`` takes
    no input that ``current`` does not — replicas require every input, so a client of
    ``current`` would not send it. Outputs are not compared: a request never names them.

    >>> x = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
    >>> incompatibilities(Signature(inputs=(x,)), Signature(inputs=(x,)))
    ()
    """
    taken = {spec.name: spec for spec in candidate.inputs}
    sent = {spec.name for spec in current.inputs}
    problems = []
    for spec in current.inputs:
        other = taken.get(spec.name)
        if other is None:
            problems.append(f"input {spec.name!r} is gone")
        elif other.datatype != spec.datatype:
            problems.append(f"input {spec.name!r} is {other.datatype}, not {spec.datatype}")
        elif not _shapes_fit(spec.shape, other.shape):
            problems.append(f"input {spec.name!r} has shape {_dims(other)}, not {_dims(spec)}")
    problems += [f"input {spec.name!r} is new and required" for spec in candidate.inputs
                 if spec.name not in sent]  # fmt: skip
    return tuple(problems)


def incompatibility(
    model: str, current: tuple[int, Signature], candidate: tuple[int, Signature], role: str
) -> str | None:
    """Why clients of ``model`` v``current`` (its ``role``, e.g. "serving") could not call
    v``candidate`` — both signatures and the differences spelled out — or None if they could."""
    problems = incompatibilities(current[1], candidate[1])
    if not problems:
        return None
    now = ", ".join(repr(spec.name) for spec in current[1].inputs) or "nothing"
    return (
        f"{model} v{candidate[0]} takes {_inputs(candidate[1])}; the {role} version "
        f"v{current[0]} takes {_inputs(current[1])}: {'; '.join(problems)}, so clients "
        f"sending {now} would get 400"
    )


def _inputs(signature: Signature) -> str:
    if not signature.inputs:
        return "no inputs"
    return ", ".join(f"'{s.name}' {s.datatype} {_dims(s)}" for s in signature.inputs)


def _dims(spec: TensorSpec) -> str:
    return "[?]" if spec.shape is None else "[" + ",".join(map(str, spec.shape)) + "]"


def _shapes_fit(sent: tuple[int, ...] | None, taken: tuple[int, ...] | None) -> bool:
    if sent is None or taken is None:
        return True
    if len(sent) != len(taken):
        return False
    return all(DYNAMIC in (a, b) or a == b for a, b in zip(sent, taken, strict=True))
