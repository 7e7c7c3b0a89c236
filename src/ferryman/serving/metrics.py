"""Prometheus metrics of one replica, on a registry the replica owns.

Labels are the replica's own model / version / variant (plus the HTTP status code and the
cache result, both small fixed sets), so no request can create a new series.

The per-request series (requests, latency, queue and compute time, batch size, top-1
classes) are plain counters that :class:`LoopCollector` turns into Prometheus families when
scraped. They take no lock: every observation happens on the event loop's thread (REST,
gRPC and the batcher all run there). A lock-taking ``prometheus_client`` histogram costs
~1.3 µs per observation and a request made six of them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LABELS = ("model", "version", "variant")


@dataclass(frozen=True)
class ReplicaIdentity:
    """What a replica serves: the model, its version and the variant (format)."""

    model: str
    version: str
    variant: str
    registry: str = ""
    """Identity of the registry the model was loaded from ('' for a file)."""

    def describe(self) -> str:
        """As people read it: ``digits v3 (onnx-fp32)``."""
        return f"{self.model} v{self.version} ({self.variant})"


class LoopCounter:
    """A counter updated only from the event loop's thread."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram updated only from the event loop's thread: a count per bucket and a sum.

    >>> histogram = LoopHistogram((1, 2))
    >>> histogram.observe(1.5)
    >>> histogram.cumulative()
    [('1.0', 0.0), ('2.0', 1.0), ('+Inf', 1.0)]
    """

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        self.counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1  # bucket "le" = first bound >= value
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Buckets as Prometheus writes them: upper bound and count at or below it."""
        buckets, total = [], 0
        bounds = (*map(floatToGoString, self._bounds), "+Inf")
        for bound, count in zip(bounds, self.counts, strict=True):
            total += count
            buckets.append((bound, float(total)))
        return buckets


class ReplicaMetrics:
    """The replica's counters and histograms, bound to its identity once."""

    def __init__(self, identity: ReplicaIdentity) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._values = (identity.model, identity.version, identity.variant)
        self.requests: dict[int, LoopCounter] = {}
        """Answered requests by HTTP status code."""
        self.latency_s = LoopHistogram(LATENCY_BUCKETS_S)
        self.queue_s = LoopHistogram(LATENCY_BUCKETS_S)
        self.compute_s = LoopHistogram(LATENCY_BUCKETS_S)
        self.batch_size = LoopHistogram(BATCH_BUCKETS)
        self.predictions: list[LoopCounter] = []
        self.in_flight: Callable[[], float] = lambda: 0.0
        """Read at scrape time; the data plane points it at its own count."""
        self.payload_outcomes: Callable[[], dict[str, int]] = dict
        """Read at scrape time: the payload log's requests by outcome (logged, sampled_out,
        dropped); the data plane points it at its log."""
        self.payload_sample_rate = 1.0
        self.registry.register(LoopCollector(self))
        self.load_s = Gauge(
            "ferryman_model_load_seconds", "Time the model took to load.", LABELS,
            registry=self.registry,
        ).labels(*self._values)  # fmt: skip
        self.is_ready = Gauge(
            "ferryman_model_ready", "1 when the replica answers correctly.", LABELS,
            registry=self.registry,
        ).labels(*self._values)  # fmt: skip
        cache = Counter(
            "ferryman_cache_requests", "Response cache lookups.", (*LABELS, "result"),
            registry=self.registry,
        )  # fmt: skip
        self.cache_hits = cache.labels(*self._values, "hit")
        self.cache_misses = cache.labels(*self._values, "miss")

    @property
    def values(self) -> tuple[str, str, str]:
        """The label values of every series: model, version, variant."""
        return self._values

    def prediction_counters(self, classes: int) -> list[LoopCounter]:
        """One counter per class index of a classifier output (``class`` label: 0..n-1)."""
        self.predictions = [LoopCounter() for _ in range(classes)]
        return self.predictions

    def count_request(self, code: int, duration_s: float) -> None:
        """Count one answered request and observe its latency."""
        counter = self.requests.get(code)
        if counter is None:
            counter = self.requests[code] = LoopCounter()
        counter.value += 1
        self.latency_s.observe(duration_s)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class LoopCollector(Collector):
    """Turns a replica's loop counters into Prometheus families when scraped."""

    def __init__(self, metrics: ReplicaMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m, values = self._metrics, self._metrics.values
        requests = CounterMetricFamily(
            "ferryman_requests", "Requests answered, by HTTP status code.", labels=(*LABELS, "code")
        )
        for code, counter in sorted(m.requests.items()):
            requests.add_metric((*values, str(code)), counter.value)
        yield requests
        for name, documentation, histogram in (
            ("ferryman_request_duration_seconds", "Time to answer.", m.latency_s),
            ("ferryman_queue_duration_seconds", "Time waiting to run.", m.queue_s),
            ("ferryman_compute_duration_seconds", "Model run time.", m.compute_s),
            ("ferryman_batch_size", "Requests per model call.", m.batch_size),
        ):
            family = HistogramMetricFamily(name, documentation, labels=LABELS)
            family.add_metric(values, histogram.cumulative(), histogram.sum)
            yield family
        in_flight = GaugeMetricFamily(
            "ferryman_in_flight_requests", "Requests being answered.", labels=LABELS
        )
        in_flight.add_metric(values, m.in_flight())
        yield in_flight
        outcomes = m.payload_outcomes()
        if outcomes:
            payloads = CounterMetricFamily(
                "ferryman_payload_records",
                "Answered requests by what the payload log did with them: logged, sampled_out "
                "(the declared sample rate left them out) or dropped (overwritten unread).",
                labels=(*LABELS, "outcome"),
            )
            for outcome, count in outcomes.items():
                payloads.add_metric((*values, outcome), count)
            yield payloads
            rate = GaugeMetricFamily(
                "ferryman_payload_sample_rate", "Share of requests the payload log keeps.",
                labels=LABELS,
            )  # fmt: skip
            rate.add_metric(values, m.payload_sample_rate)
            yield rate
        if m.predictions:
            predictions = CounterMetricFamily(
                "ferryman_predictions",
                "Answered rows by top-1 class, for the drift of predictions between versions.",
                labels=(*LABELS, "class"),
            )
            for index, counter in enumerate(m.predictions):
                predictions.add_metric((*values, str(index)), counter.value)
            yield predictions
