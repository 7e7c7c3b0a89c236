"""Model quality from feedback: a confusion matrix and the figures people compare.

Pure functions over (predicted, actual) label pairs. Precision, recall and F1 are given per
class and macro-averaged over every class seen, predicted or true, as scikit-learn's
``average="macro"`` does (every class counts the same, so a rare class that a model gets
wrong shows); accuracy is the share of rows predicted right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Quality:
    """What feedback says of a variant's answers."""

    labelled: int
    correct: int
    precision: float
    recall: float
    f1: float
    per_class: dict[str, ClassScores]

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "labelled": self.labelled,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "per_class": {name: vars(scores) for name, scores in self.per_class.items()},
        }


def confusion(predicted: Sequence[str], actual: Sequence[str]) -> Counter[tuple[str, str]]:
    """Counts of (actual, predicted) pairs."""
    return Counter(zip(actual, predicted, strict=True))


def quality(matrix: Counter[tuple[str, str]]) -> Quality:
    """Accuracy and macro precision/recall/F1 of a confusion matrix of (actual, predicted).

    >>> q = quality(confusion(["a", "a", "b", "b"], ["a", "b", "b", "b"]))
    >>> (q.accuracy, round(q.f1, 3))
    (0.75, 0.733)
    """
    labelled = sum(matrix.values())
    classes = sorted({name for pair in matrix for name in pair})
    per_class = {}
    for name in classes:
        hits = matrix[(name, name)]
        said = sum(count for (_, guess), count in matrix.items() if guess == name)
        true = sum(count for (truth, _), count in matrix.items() if truth == name)
        precision = hits / said if said else 0.0
        recall = hits / true if true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassScores(precision, recall, f1, true)
    scored = list(per_class.values())  # every class seen, predicted or true (as scikit-learn)
    count = len(scored) or 1
    return Quality(
        labelled=labelled,
        correct=sum(matrix[(name, name)] for name in classes),
        precision=sum(s.precision for s in scored) / count,
        recall=sum(s.recall for s in scored) / count,
        f1=sum(s.f1 for s in scored) / count,
        per_class=per_class,
    )
