"""One sample per variant from two readings of the world: a pure function, no clock inside.

A :class:`Reading` is everything the monitor read at one moment: the gateway's counters,
each routed replica's counters and process usage, the route table's weights and replica
counts, feedback signals and recent restarts. Counters only grow, so rates, latency
quantiles, mean batch sizes, CPU and prediction shares over the interval are differences
of two readings (:func:`sample`); a counter that shrank was reset and counts afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ferryman.control.analysis.drift import Classes, grown, jensen_shannon
from ferryman.control.metrics.feedback import INPUT_ROWS, LABELLED, RATED
from ferryman.control.metrics.traffic import Traffic, window
from ferryman.registry import MetricSample
from ferryman.types import Slot


@dataclass(frozen=True)
class ReplicaReading:
    """One replica's counters (and its process's usage, where known) at one moment."""

    endpoint: str
    variant: str
    batch_rows: float = 0.0
    batches: float = 0.0
    classes: Classes = field(default_factory=dict)
    cpu_s: float | None = None
    rss_bytes: float | None = None
    is_scraped: bool = True
    """False when its /metrics did not answer: its counters are unknown, not zero."""
    in_flight: float = 0.0
    """Requests being answered now (a language model's open streams)."""
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    """A language model's token counters."""


@dataclass(frozen=True)
class VariantReading:
    """What the route table and the deployment say of a variant now."""

    weight: float
    replicas_ready: int
    replicas_desired: int
    is_main: bool = False
    """The variant the others' predictions are compared with (the heaviest weight)."""


@dataclass(frozen=True)
class Reading:
    at_s: float
    """Monotonic seconds: the interval between two readings."""
    time_s: float
    """Unix seconds: the time the samples carry."""
    traffic: Mapping[Slot, Traffic] | None
    """The gateway's totals; None when it could not be read."""
    variants: Mapping[Slot, VariantReading] = field(default_factory=dict)
    replicas: Mapping[str, ReplicaReading] = field(default_factory=dict)
    """By replica URL."""
    signals: Mapping[Slot, Mapping[str, float]] = field(default_factory=dict)
    """Accuracy, F1, the thumbs-up rate and input drift from the payload log."""
    restarts: Mapping[Slot, int] = field(default_factory=dict)
    """Replica restarts in the last 10 minutes."""


SIZES = {LABELLED: ("accuracy", "f1"), RATED: ("thumbs_up_rate",), INPUT_ROWS: ("input_drift_psi",)}
"""The sizes a reading's signals carry beside their values, and the series each sizes."""
TRAFFIC_SERIES = ("qps", "error_rate", "p50_ms", "p99_ms")
"""Series that stand on the requests the gateway answered in the interval."""
QUANTILES = ((0.5, "p50"), (0.99, "p99"))


def sample(earlier: Reading, later: Reading) -> list[MetricSample]:
    """Each variant of ``later`` over the interval since ``earlier``."""
    interval_s = later.at_s - earlier.at_s
    traffic = _traffic(earlier, later)
    usage = _replica_windows(earlier, later)
    samples = []
    for key, variant in sorted(later.variants.items()):
        values: dict[str, float] = {
            "weight": variant.weight,
            "replicas": float(variant.replicas_ready),
            "replicas_desired": float(variant.replicas_desired),
            "restarts_10m": float(later.restarts.get(key, 0)),
        }
        sizes: dict[str, float] = {}
        for name, value in later.signals.get(key, {}).items():
            for series in SIZES.get(name, ()):
                sizes[series] = value
            if name not in SIZES:
                values[name] = value
        if traffic is not None and interval_s > 0:
            answered = traffic.get(key, Traffic())
            values.update(_traffic_values(answered, interval_s))
            sizes.update(dict.fromkeys(TRAFFIC_SERIES, answered.requests))
        values.update(_replica_values(usage.get(key), interval_s))
        drift = _prediction_drift(key, later.variants, usage)
        if drift is not None:
            values["prediction_drift"] = drift
        samples.append(
            MetricSample(
                time_s=later.time_s, endpoint=key[0], variant=key[1], values=values, sizes=sizes
            )
        )
    return samples


@dataclass
class _Window:
    """A variant's replicas over the interval, summed."""

    batch_rows: float = 0.0
    batches: float = 0.0
    classes: Classes = field(default_factory=dict)
    cpu_s: float | None = None
    rss_bytes: float | None = None
    in_flight: float | None = None
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    is_generative: bool = False
    """Some replica counted tokens: the token series are recorded (zero included)."""


def _traffic(earlier: Reading, later: Reading) -> dict[Slot, Traffic] | None:
    if earlier.traffic is None or later.traffic is None:
        return None
    return window(dict(later.traffic), dict(earlier.traffic))


def _traffic_values(traffic: Traffic, interval_s: float) -> dict[str, float]:
    values = {"qps": traffic.requests / interval_s}
    if traffic.requests > 0:
        values["error_rate"] = traffic.error_rate
        values["client_error_rate"] = traffic.client_error_rate
        for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
            seconds = traffic.quantile_s(q)
            if seconds is not None:
                values[name] = seconds * 1000
    for q, name in QUANTILES:  # a language model's streams, from the gateway's histograms
        first, gap = traffic.first_token_quantile_s(q), traffic.inter_token_quantile_s(q)
        for series, seconds in ((f"ttft_{name}_ms", first), (f"tpot_{name}_ms", gap)):
            if seconds is not None:
                values[series] = seconds * 1000
    return values


def _replica_windows(earlier: Reading, later: Reading) -> dict[Slot, _Window]:
    windows: dict[Slot, _Window] = {}
    for url, now in later.replicas.items():
        summed = windows.setdefault((now.endpoint, now.variant), _Window())
        before = earlier.replicas.get(url)
        if now.rss_bytes is not None:
            summed.rss_bytes = (summed.rss_bytes or 0.0) + now.rss_bytes
        if before is None or (before.endpoint, before.variant) != (now.endpoint, now.variant):
            before = ReplicaReading(now.endpoint, now.variant)  # new: counted from zero
        if now.cpu_s is not None and before.cpu_s is not None and now.cpu_s >= before.cpu_s:
            summed.cpu_s = (summed.cpu_s or 0.0) + now.cpu_s - before.cpu_s
        if now.is_scraped:
            summed.in_flight = (summed.in_flight or 0.0) + now.in_flight
        if not (now.is_scraped and before.is_scraped):
            continue
        _add_tokens(summed, now, before)
        is_reset = now.batches < before.batches
        summed.batch_rows += now.batch_rows - (0.0 if is_reset else before.batch_rows)
        summed.batches += now.batches - (0.0 if is_reset else before.batches)
        for name, count in grown(now.classes, before.classes).items():
            summed.classes[name] = summed.classes.get(name, 0.0) + count
    return windows


def _replica_values(summed: _Window | None, interval_s: float) -> dict[str, float]:
    if summed is None:
        return {}
    values = {}
    if summed.batches > 0:
        values["batch_size"] = summed.batch_rows / summed.batches
    if summed.cpu_s is not None and interval_s > 0:
        values["cpu_pct"] = 100.0 * summed.cpu_s / interval_s
    if summed.rss_bytes is not None:
        values["rss_bytes"] = summed.rss_bytes
    if summed.in_flight is not None:
        values["in_flight"] = summed.in_flight
    if summed.is_generative and interval_s > 0:
        values["tokens_per_s"] = summed.completion_tokens / interval_s
        values["prompt_tokens_per_s"] = summed.prompt_tokens / interval_s
    return values


def _add_tokens(summed: _Window, now: ReplicaReading, before: ReplicaReading) -> None:
    """A replica's tokens over the interval (a counter that shrank was reset: all new)."""
    if not (now.completion_tokens or now.prompt_tokens):
        return
    summed.is_generative = True
    summed.completion_tokens += _grown(now.completion_tokens, before.completion_tokens)
    summed.prompt_tokens += _grown(now.prompt_tokens, before.prompt_tokens)


def _grown(count: float, earlier: float) -> float:
    return count - earlier if count >= earlier else count


def _prediction_drift(
    key: Slot, variants: Mapping[Slot, VariantReading], windows: Mapping[Slot, _Window]
) -> float | None:
    """JS divergence of the variant's top-1 classes from its endpoint's main variant's."""
    main = next((k for k, v in variants.items() if k[0] == key[0] and v.is_main), None)
    if main is None or main == key or key not in windows or main not in windows:
        return None
    mine, theirs = windows[key].classes, windows[main].classes
    if sum(mine.values()) <= 0 or sum(theirs.values()) <= 0:
        return None
    return jensen_shannon(mine, theirs)
