"""How a classifier's outputs read as classes, for every kind of model the registry takes.

- scikit-learn through skl2onnx (zipmap off): ``label`` INT64 or STRING ``[N]`` and
  ``probabilities`` FP32 ``[N, C]``;
- a network exported with its softmax: one float ``[N, C]`` output of probabilities;
- a network giving logits: one float ``[N, C]`` output, turned into probabilities by a
  softmax here.

The probability output is chosen by name (``prob``, ``softmax``) and shape (``[N, C]``,
floats), the label output by datatype and shape (integers, one per row; strings when the
model also gives scores or names the output as labels, since a text model's strings are no
classes). A softmax is
never taken over a label output. The data plane reads every answer once
(:meth:`ClassOutputs.read`); the payload log and ``/predict`` both take that reading, so
what a client is told and what is logged agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ferryman.signature import Signature, TensorSpec

Arrays = dict[str, npt.NDArray[Any]]

MAX_COUNTED_CLASSES = 64
"""Classes beyond this get no prediction counters (the drift signal's series)."""
FLOATS = frozenset({"FP16", "FP32", "FP64", "BF16"})
LABEL_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                         "UINT64", "BYTES"})  # fmt: skip
PROBABILITY_WORDS = ("prob", "softmax")
LABEL_WORDS = ("label", "class")


@dataclass(slots=True)
class Reading:
    """One answer read as classes: a label per row, and the scores behind them.

    Not frozen: a frozen dataclass costs a microsecond to make, and one is made per request.
    """

    labels: list[str]
    """Each row's predicted class, as the client is answered and the payload log keeps it."""
    columns: list[int] | None
    """Each row's column in ``scores`` (its top-1 class index), or None without scores."""
    scores: npt.NDArray[Any] | None
    """The score output as the model gave it, ``[N, C]``, or None."""


@dataclass(frozen=True, slots=True)
class ClassOutputs:
    """Which outputs of a model are its classes, and their names."""

    scores: str | None
    """A float ``[N, C]`` output: probabilities, or logits."""
    label: str | None
    """An integer or string output with one value per row."""
    names: tuple[str, ...]
    """The class of each score column, as clients read it (empty: numbered from 0)."""
    values: dict[str, int]
    """The label output's values, each with its score column (from the graph's classes)."""
    is_probability: bool
    """True when the scores are probabilities by name; otherwise each answer is checked."""
    width: int
    """C, the number of score columns the signature declares (-1: open or no scores)."""

    @property
    def counted(self) -> int:
        """How many classes get prediction counters (0: none)."""
        return self.width if 2 <= self.width <= MAX_COUNTED_CLASSES else 0

    def read(self, outputs: Arrays) -> Reading | None:
        """Each row's class in ``outputs``; None when they are not shaped as declared."""
        scores = outputs.get(self.scores) if self.scores is not None else None
        columns: list[int] | None = None
        width = 0
        if scores is not None:
            if scores.ndim == 2 and scores.shape[1] > 1:
                columns = scores.argmax(axis=1).tolist()
                width = scores.shape[1]
            else:
                scores = None
        if self.label is not None:
            label = outputs.get(self.label)
            if label is not None and label.ndim >= 1 and label.size == label.shape[0]:
                return self._by_label(label.ravel().tolist(), columns, scores)
        if columns is None:
            return None
        names = self.names
        if len(names) == width:
            return Reading([names[i] for i in columns], columns, scores)
        return Reading([str(i) for i in columns], columns, scores)

    def _by_label(
        self, given: list[Any], columns: list[int] | None, scores: npt.NDArray[Any] | None
    ) -> Reading:
        """The label output is the answer; the graph's classes say which column it is."""
        values = self.values
        labels: list[str] = []
        for row, value in enumerate(given):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            column = values.get(text)
            if column is not None and columns is not None:
                columns[row] = column
            labels.append(self.names[column] if column is not None and self.names else text)
        return Reading(labels, columns, scores)

    def probabilities(self, reading: Reading) -> npt.NDArray[np.float64] | None:
        """The reading's scores as probabilities (a softmax over logits), or None."""
        if reading.scores is None:
            return None
        matrix = np.asarray(reading.scores, dtype=np.float64)
        if self.is_probability or _is_distribution(matrix):
            return matrix
        shifted = np.exp(matrix - matrix.max(axis=1, keepdims=True))
        softmax: npt.NDArray[np.float64] = shifted / shifted.sum(axis=1, keepdims=True)
        return softmax


def class_outputs(
    signature: Signature, labels: Sequence[str] = (), label_values: Sequence[str] = ()
) -> ClassOutputs | None:
    """How ``signature``'s outputs read as classes; None when the model is no classifier.

    ``labels`` are the version's class names, one per score column; ``label_values`` what
    its label output writes for each (both from its reference data; the values default to
    the names).
    """
    scores = _score_output(signature.outputs)
    label = _label_output(signature.outputs, has_scores=scores is not None)
    if scores is None and label is None:
        return None
    columns = scores.shape[1] if scores is not None and scores.shape else -1
    names = tuple(labels) if columns in (-1, len(labels)) else ()
    written = tuple(label_values) if len(label_values) == len(names) else names
    values = {value: index for index, value in enumerate(written)} if label is not None else {}
    return ClassOutputs(
        scores=None if scores is None else scores.name,
        label=None if label is None else label.name,
        names=names,
        values=values,
        is_probability=scores is not None and _says_probability(scores.name),
        width=columns,
    )


def _score_output(outputs: Sequence[TensorSpec]) -> TensorSpec | None:
    """The float ``[N, C]`` output (C ≥ 2 or open), preferring one named as probabilities."""
    candidates = [
        spec
        for spec in outputs
        if spec.datatype in FLOATS
        and spec.shape is not None
        and len(spec.shape) == 2
        and spec.shape[0] == -1
        and spec.shape[1] not in (0, 1)
    ]
    named = [spec for spec in candidates if _says_probability(spec.name)]
    chosen = named or candidates
    return chosen[0] if chosen else None


def _label_output(outputs: Sequence[TensorSpec], has_scores: bool) -> TensorSpec | None:
    """The output with one class per row: integers, or strings beside scores or named as
    labels (a text model's string outputs are no classes), preferring one named as labels."""
    candidates = [
        spec
        for spec in outputs
        if _is_one_per_row(spec)
        and (spec.datatype != "BYTES" or has_scores or _says_label(spec.name))
    ]
    named = [spec for spec in candidates if _says_label(spec.name)]
    chosen = named or candidates
    return chosen[0] if chosen else None


def _is_one_per_row(spec: TensorSpec) -> bool:
    """An integer or string tensor shaped ``[N]`` or ``[N, 1]``."""
    shape = spec.shape
    one_per_row = shape is not None and shape[:1] == (-1,) and shape[1:] in ((), (1,))
    return spec.datatype in LABEL_TYPES and one_per_row


def _says_label(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in LABEL_WORDS)


def _says_probability(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in PROBABILITY_WORDS)


def _is_distribution(matrix: npt.NDArray[np.float64]) -> bool:
    return bool((matrix >= 0).all() and np.allclose(matrix.sum(axis=1), 1.0, atol=1e-3))
