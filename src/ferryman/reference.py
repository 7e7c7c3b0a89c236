"""Reference data of a version: what its training data looked like and what it must answer.

Training writes it; the registry stores it as a JSON artifact next to the model; the data
plane replays the golden requests at load (a replica is ready only if it answers them
correctly) and the monitor compares live traffic with the summaries to detect drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from ferryman.signature import Datatype

MAX_GOLDEN_REQUESTS = 64
IMAGE_SUMMARIES = ("mean_intensity", "contrast")


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
    input_ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="per input, the smallest and largest value in the validation data",
    )
    label_values: tuple[str, ...] = Field(
        default=(),
        description="what the model's label output writes for each class, index order (the "
        "classes its ONNX graph declares, e.g. scikit-learn's classes_); () if it has none",
    )


def input_guide(reference: ReferenceData) -> dict[str, dict[str, Any]]:
    """What each input takes, for clients: an example (a golden request's input, one row)
    and the range of values (the validation data's, else the golden inputs')."""
    guide: dict[str, dict[str, Any]] = {}
    for name, tensor in reference.golden[0].inputs.items() if reference.golden else ():
        values = [v for g in reference.golden if name in g.inputs for v in g.inputs[name].data
                  if isinstance(v, int | float)]  # fmt: skip
        guide[name] = {"example": tensor.model_dump(mode="json")}
        if values:
            guide[name]["range"] = [float(min(values)), float(max(values))]
    for name, (low, high) in reference.input_ranges.items():
        guide.setdefault(name, {})["range"] = [low, high]
    return guide


def with_graph_classes(reference: ReferenceData | None, classes: tuple[str, ...]) -> ReferenceData:
    """``reference`` knowing the classes an ONNX graph declares: as what its label output
    writes (``label_values``) and, when it names no classes of its own, as its labels."""
    reference = reference or ReferenceData()
    labels = reference.labels if len(reference.labels) == len(classes) else classes
    return reference.model_copy(update={"labels": labels, "label_values": classes})


def row_summaries(names: Sequence[str], rows: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
    """The value of each named input summary for every row (first axis) of ``rows``.

    One definition for training (which histograms these values over the validation set) and
    serving (which reports them per request, so the monitor can compare live inputs with the
    histograms). Images are summarised by mean intensity and contrast; a table by its
    columns, in order. Names that fit neither give nothing.

    >>> row_summaries(["mean_intensity", "contrast"], np.zeros((2, 1, 8, 8)))["contrast"]
    array([0., 0.])
    """
    flat = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    if tuple(names) == IMAGE_SUMMARIES:
        return {"mean_intensity": flat.mean(axis=1), "contrast": flat.std(axis=1)}
    if len(names) and flat.shape[1] == len(names):
        return {name: flat[:, index] for index, name in enumerate(names)}
    return {}
