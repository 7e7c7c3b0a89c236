"""How far apart two versions' predictions are: Jensen-Shannon divergence of class counts.

Replicas count the top-1 class of every answered row (``ferryman_predictions_total``); the
rollout controller sums them per variant over its window and compares the candidate's
distribution with the baseline's. The divergence (base 2) is 0 for the same distribution
and 1 for distributions with nothing in common.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from ferryman.reference import Histogram

PREDICTIONS = "ferryman_predictions_total"

Classes = dict[str, float]


def jensen_shannon(p_counts: Mapping[str, float], q_counts: Mapping[str, float]) -> float:
    """JS divergence (base 2, in [0, 1]) of two class-count tables.

    >>> jensen_shannon({"0": 10}, {"0": 3})
    0.0
    >>> jensen_shannon({"0": 5}, {"1": 5})
    1.0
    """
    p_total, q_total = sum(p_counts.values()), sum(q_counts.values())
    if p_total <= 0 or q_total <= 0:
        return 0.0
    divergence = 0.0
    for name in set(p_counts) | set(q_counts):
        p = p_counts.get(name, 0.0) / p_total
        q = q_counts.get(name, 0.0) / q_total
        m = (p + q) / 2
        divergence += sum(0.5 * x * math.log2(x / m) for x in (p, q) if x > 0)
    return min(1.0, max(0.0, divergence))


def class_counts(metrics_text: str) -> Classes:
    """Top-1 class counts in one replica's /metrics text."""
    counts: Classes = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == PREDICTIONS:
                name = sample.labels.get("class", "")
                counts[name] = counts.get(name, 0.0) + sample.value
    return counts


def grown(later: Mapping[str, float], earlier: Mapping[str, float]) -> Classes:
    """Counts added between two snapshots (a table that shrank was reset: count afresh)."""
    if sum(later.values()) < sum(earlier.values()):
        return dict(later)
    return {name: count - earlier.get(name, 0.0) for name, count in later.items()}


PSI_FLOOR = 1e-4  # the share given to an empty bin, so that a log stays finite


def population_stability(reference: Histogram, values: Sequence[float]) -> float:
    """PSI of live ``values`` against a training-time histogram, over its bins.

    Values outside the reference range count in its first or last bin. Common reading:
    below 0.1 stable, 0.1-0.2 a shift worth watching, above 0.2 a real drift.

    >>> same = Histogram(edges=(0.0, 0.5, 1.0), fractions=(0.5, 0.5))
    >>> population_stability(same, [0.25, 0.75])
    0.0
    >>> round(population_stability(same, [0.9, 0.9, 0.9, 0.1]), 3)
    0.275
    """
    if not values or len(reference.fractions) < 2:
        return 0.0
    inner = np.asarray(reference.edges[1:-1], dtype=np.float64)
    counts = np.bincount(np.searchsorted(inner, values, side="right"),
                         minlength=len(reference.fractions))  # fmt: skip
    live = np.maximum(counts / len(values), PSI_FLOOR)
    expected = np.maximum(np.asarray(reference.fractions, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((live - expected) * np.log(live / expected)))


def input_drift(reference: Mapping[str, Histogram], live: Mapping[str, Sequence[float]]) -> float:
    """The largest PSI over the summaries both sides have; 0 when there is nothing to compare."""
    scores = [
        population_stability(reference[name], live[name]) for name in reference if live.get(name)
    ]
    return max(scores, default=0.0)
