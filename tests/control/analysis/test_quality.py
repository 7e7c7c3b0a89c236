"""Quality from feedback: a confusion matrix and its figures, checked by hand and by sklearn."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ferryman.control.analysis.quality import confusion, quality


def test_f1_of_a_known_confusion_matrix() -> None:
    """Two classes; truth cat x6, dog x4. The model says: cat 5 of 6 cats, cat for 2 dogs.

    cat: precision 5/7, recall 5/6; dog: precision 2/3, recall 2/4.
    """
    actual = ["cat"] * 6 + ["dog"] * 4
    predicted = ["cat"] * 5 + ["dog"] + ["cat"] * 2 + ["dog"] * 2
    scores = quality(confusion(predicted, actual))
    assert scores.labelled == 10
    assert scores.accuracy == pytest.approx(0.7)
    cat, dog = scores.per_class["cat"], scores.per_class["dog"]
    assert (cat.precision, cat.recall) == pytest.approx((5 / 7, 5 / 6))
    assert (dog.precision, dog.recall, dog.support) == pytest.approx((2 / 3, 0.5, 4))
    cat_f1 = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
    dog_f1 = 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert scores.f1 == pytest.approx((cat_f1 + dog_f1) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_figures_agree_with_scikit_learn_macro_averages(seed: int) -> None:
    rng = random.Random(seed)
    labels = [str(n) for n in range(rng.randrange(2, 6))]
    actual = [rng.choice(labels) for _ in range(300)]
    predicted = [a if rng.random() < 0.7 else rng.choice(labels) for a in actual]
    scores = quality(confusion(predicted, actual))
    assert scores.accuracy == pytest.approx(accuracy_score(actual, predicted))
    for ours, theirs in (
        (scores.precision, precision_score),
        (scores.recall, recall_score),
        (scores.f1, f1_score),
    ):
        assert ours == pytest.approx(theirs(actual, predicted, average="macro", zero_division=0))


def test_no_labels_is_zero_rows_not_an_error() -> None:
    scores = quality(confusion([], []))
    assert (scores.labelled, scores.accuracy, scores.f1) == (0, 0.0, 0.0)
