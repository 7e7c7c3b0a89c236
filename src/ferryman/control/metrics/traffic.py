"""Traffic per variant from the gateway's Prometheus text: requests, errors, latency.

Counters and histograms only ever grow, so a window is the difference of two scrapes:
``window(later, earlier)``. The p99 comes from the histogram buckets the way Prometheus'
``histogram_quantile`` computes it (linear within the bucket that holds the rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from ferryman.types import Slot

REQUESTS = "ferryman_gateway_requests_total"
LATENCY = "ferryman_gateway_request_duration_seconds_bucket"
TIME_TO_FIRST = "ferryman_gateway_first_token_seconds_bucket"
BETWEEN_TOKENS = "ferryman_gateway_inter_token_seconds_bucket"
SHADOW = "ferryman_gateway_shadow_total"
REPLICA_REQUESTS = "ferryman_requests_total"
REPLICA_LATENCY = "ferryman_request_duration_seconds_bucket"


@dataclass(frozen=True)
class Traffic:
    """Totals of one variant: requests, 5xx answers, the latency histogram, — for a shadow —
    its copies by comparison outcome (equal, close, different…), and 4xx answers: requests
    the variant refused, which a client of another version may send it."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → cumulative count
    shadow: dict[str, float] = field(default_factory=dict)
    client_errors: float = 0.0
    first_token: dict[float, float] = field(default_factory=dict)
    """Language models: time to the first token of 200 streams (upper bound → count)."""
    inter_token: dict[float, float] = field(default_factory=dict)
    """Language models: gaps between the pieces of 200 streams (upper bound → count)."""

    @property
    def error_rate(self) -> float:
        """The share of 5xx answers."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def client_error_rate(self) -> float:
        """The share of 4xx answers."""
        return self.client_errors / self.requests if self.requests else 0.0

    def quantile_s(self, q: float) -> float | None:
        """The ``q`` quantile of latency in seconds, or None without observations."""
        return histogram_quantile(q, self.buckets)

    def first_token_quantile_s(self, q: float) -> float | None:
        """The ``q`` quantile of time to first token, or None without streams."""
        return histogram_quantile(q, self.first_token)

    def inter_token_quantile_s(self, q: float) -> float | None:
        """The ``q`` quantile of the time between tokens, or None without streams."""
        return histogram_quantile(q, self.inter_token)


def traffic_by_variant(text: str) -> dict[Slot, Traffic]:
    """Parse the gateway's /metrics text into totals per (endpoint, variant)."""
    requests: dict[Slot, float] = {}
    errors: dict[Slot, float] = {}
    client_errors: dict[Slot, float] = {}
    buckets: dict[Slot, dict[float, float]] = {}
    first_token: dict[Slot, dict[float, float]] = {}
    inter_token: dict[Slot, dict[float, float]] = {}
    shadow: dict[Slot, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.labels.get("endpoint", ""), sample.labels.get("variant", ""))
            if sample.name == REQUESTS:
                requests[key] = requests.get(key, 0.0) + sample.value
                code = sample.labels.get("code", "")
                if code.startswith("5"):
                    errors[key] = errors.get(key, 0.0) + sample.value
                elif code.startswith("4"):
                    client_errors[key] = client_errors.get(key, 0.0) + sample.value
            elif sample.name == LATENCY:
                bound = float(sample.labels["le"])
                buckets.setdefault(key, {})[bound] = sample.value
            elif sample.name == TIME_TO_FIRST:
                first_token.setdefault(key, {})[float(sample.labels["le"])] = sample.value
            elif sample.name == BETWEEN_TOKENS:
                inter_token.setdefault(key, {})[float(sample.labels["le"])] = sample.value
            elif sample.name == SHADOW:
                shadow.setdefault(key, {})[sample.labels.get("outcome", "")] = sample.value
    keys = set(requests) | set(buckets) | set(shadow)
    return {
        k: Traffic(requests.get(k, 0.0), errors.get(k, 0.0), buckets.get(k, {}), shadow.get(k, {}),
                   client_errors.get(k, 0.0), first_token.get(k, {}), inter_token.get(k, {}))
        for k in keys
    }  # fmt: skip


def replica_traffic(text: str) -> Traffic:
    """One replica's own totals from its /metrics text: requests, 5xx and 4xx answers and
    latency."""
    requests = errors = client_errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == REPLICA_REQUESTS:
                requests += sample.value
                code = sample.labels.get("code", "")
                errors += sample.value if code.startswith("5") else 0.0
                client_errors += sample.value if code.startswith("4") else 0.0
            elif sample.name == REPLICA_LATENCY:
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Traffic(requests, errors, buckets, client_errors=client_errors)


def summed(parts: list[Traffic]) -> Traffic:
    """The totals of several replicas of one variant."""
    buckets: dict[float, float] = {}
    for part in parts:
        for bound, count in part.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
    return Traffic(
        sum(p.requests for p in parts), sum(p.errors for p in parts), buckets,
        client_errors=sum(p.client_errors for p in parts),
    )  # fmt: skip


def window(later: dict[Slot, Traffic], earlier: dict[Slot, Traffic]) -> dict[Slot, Traffic]:
    """What happened between two scrapes (a restarted gateway's counters start again)."""
    return {key: grown_since(now, earlier.get(key, Traffic())) for key, now in later.items()}


def grown_since(now: Traffic, before: Traffic) -> Traffic:
    """What one variant's totals gained since ``before`` (all of them after a reset)."""
    if now.requests < before.requests or sum(now.shadow.values()) < sum(before.shadow.values()):
        before = Traffic()  # counters were reset
    buckets = {b: count - before.buckets.get(b, 0.0) for b, count in now.buckets.items()}
    shadow = {name: count - before.shadow.get(name, 0.0) for name, count in now.shadow.items()}
    first = {b: count - before.first_token.get(b, 0.0) for b, count in now.first_token.items()}
    gaps = {b: count - before.inter_token.get(b, 0.0) for b, count in now.inter_token.items()}
    return Traffic(
        now.requests - before.requests, now.errors - before.errors, buckets, shadow,
        now.client_errors - before.client_errors, first, gaps,
    )  # fmt: skip


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
