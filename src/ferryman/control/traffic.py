"""Traffic per variant from the gateway's Prometheus text: requests, errors, latency.

Counters and histograms only ever grow, so a window is the difference of two scrapes:
``window(later, earlier)``. The p99 comes from the histogram buckets the way Prometheus'
``histogram_quantile`` computes it (linear within the bucket that holds the rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, str]  # (endpoint, variant)

REQUESTS = "ferryman_gateway_requests_total"
LATENCY = "ferryman_gateway_request_duration_seconds_bucket"


@dataclass(frozen=True)
class Traffic:
    """Totals of one variant: requests, 5xx answers and the latency histogram."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → cumulative count

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile_s(self, q: float) -> float | None:
        """The ``q`` quantile of latency in seconds, or None without observations."""
        return histogram_quantile(q, self.buckets)


def traffic_by_variant(text: str) -> dict[Key, Traffic]:
    """Parse the gateway's /metrics text into totals per (endpoint, variant)."""
    requests: dict[Key, float] = {}
    errors: dict[Key, float] = {}
    buckets: dict[Key, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.labels.get("endpoint", ""), sample.labels.get("variant", ""))
            if sample.name == REQUESTS:
                requests[key] = requests.get(key, 0.0) + sample.value
                if sample.labels.get("code", "").startswith("5"):
                    errors[key] = errors.get(key, 0.0) + sample.value
            elif sample.name == LATENCY:
                bound = float(sample.labels["le"])
                buckets.setdefault(key, {})[bound] = sample.value
    keys = set(requests) | set(buckets)
    return {k: Traffic(requests.get(k, 0.0), errors.get(k, 0.0), buckets.get(k, {})) for k in keys}


def window(later: dict[Key, Traffic], earlier: dict[Key, Traffic]) -> dict[Key, Traffic]:
    """What happened between two scrapes (a restarted gateway's counters start again)."""
    result = {}
    for key, now in later.items():
        before = earlier.get(key, Traffic())
        if now.requests < before.requests:  # counters were reset
            before = Traffic()
        buckets = {b: count - before.buckets.get(b, 0.0) for b, count in now.buckets.items()}
        result[key] = Traffic(now.requests - before.requests, now.errors - before.errors, buckets)
    return result


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' estimate of the ``q`` quantile from cumulative bucket counts.

    >>> histogram_quantile(0.5, {0.1: 50, 0.2: 100, math.inf: 100})
    0.1
    """
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 0.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return bounds[-2] if len(bounds) > 1 else None
