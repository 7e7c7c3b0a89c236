"""Reference data of a version: what its training data looked like and what it must answer.

Training writes it; the registry stores it as a JSON artifact next to the model; the data
plane replays the golden requests at load (a replica is ready only if it answers them
correctly) and the monitor compares live traffic with the summaries to detect drift.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ferryman.signature import Datatype

MAX_GOLDEN_REQUESTS = 64


class Tensor(BaseModel):
    """A tensor as plain JSON: its datatype, shape and row-major flattened data."""

    model_config = ConfigDict(frozen=True)

    datatype: Datatype
    shape: tuple[int, ...]
    data: tuple[float | int | bool | str, ...]


class GoldenRequest(BaseModel):
    """An input with the outputs the version gave for it when it was registered."""

    model_config = ConfigDict(frozen=True)

    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    atol: float = Field(default=1e-4, ge=0, description="absolute tolerance when replaying")


class Histogram(BaseModel):
    """A distribution summary: bin edges (len n+1) and the fraction of samples per bin (len n)."""

    model_config = ConfigDict(frozen=True)

    edges: tuple[float, ...]
    fractions: tuple[float, ...]


class ReferenceData(BaseModel):
    """Golden requests plus summaries of inputs and predictions on the validation set."""

    model_config = ConfigDict(frozen=True)

    golden: tuple[GoldenRequest, ...] = Field(default=(), max_length=MAX_GOLDEN_REQUESTS)
    input_summaries: dict[str, Histogram] = Field(
        default_factory=dict, description="per feature, or per-image summary such as mean intensity"
    )
    prediction_summary: dict[str, float] = Field(
        default_factory=dict, description="share of validation predictions per class label"
    )
    labels: tuple[str, ...] = Field(default=(), description="class names, index order")
