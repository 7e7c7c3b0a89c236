"""How far apart two versions' predictions are: Jensen-Shannon divergence of class counts.

Replicas count the top-1 class of every answered row (``ferryman_predictions_total``); the
rollout controller sums them per variant over its window and compares the candidate's
distribution with the baseline's. The divergence (base 2) is 0 for the same distribution
and 1 for distributions with nothing in common.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

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
