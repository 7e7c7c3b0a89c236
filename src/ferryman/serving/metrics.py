"""Prometheus metrics of one replica, on a registry the replica owns.

Labels are the replica's own model / version / variant (plus the HTTP status code and the
cache result, both small fixed sets), so no request can create a new series.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class ReplicaIdentity:
    """What a replica serves: the model, its version and the variant (format)."""

    model: str
    version: str
    variant: str

    def describe(self) -> str:
        """As people read it: ``digits v3 (onnx-fp32)``."""
        return f"{self.model} v{self.version} ({self.variant})"


class ReplicaMetrics:
    """The replica's counters and histograms, bound to its identity once."""

    def __init__(self, identity: ReplicaIdentity) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        names = ("model", "version", "variant")
        values = (identity.model, identity.version, identity.variant)
        self._requests = Counter(
            "ferryman_requests",
            "Requests answered, by HTTP status code.",
            (*names, "code"),
            registry=self.registry,
        )
        self._values = values
        self._by_code: dict[int, Counter] = {}
        self.latency_s = self._histogram("ferryman_request_duration_seconds", "Time to answer.")
        self.queue_s = self._histogram("ferryman_queue_duration_seconds", "Time waiting to run.")
        self.compute_s = self._histogram("ferryman_compute_duration_seconds", "Model run time.")
        self.batch_size = Histogram(
            "ferryman_batch_size", "Requests per model call.", names,
            buckets=BATCH_BUCKETS, registry=self.registry,
        ).labels(*values)  # fmt: skip
        self.in_flight = Gauge(
            "ferryman_in_flight_requests", "Requests being answered.", names, registry=self.registry
        ).labels(*values)
        self.load_s = Gauge(
            "ferryman_model_load_seconds", "Time the model took to load.", names,
            registry=self.registry,
        ).labels(*values)  # fmt: skip
        self.is_ready = Gauge(
            "ferryman_model_ready", "1 when the replica answers correctly.", names,
            registry=self.registry,
        ).labels(*values)  # fmt: skip
        cache = Counter(
            "ferryman_cache_requests", "Response cache lookups.", (*names, "result"),
            registry=self.registry,
        )  # fmt: skip
        self.cache_hits = cache.labels(*values, "hit")
        self.cache_misses = cache.labels(*values, "miss")

    def prediction_counters(self, classes: int) -> list[Counter]:
        """One counter per class index of a classifier output (``class`` label: 0..n-1)."""
        family = Counter(
            "ferryman_predictions",
            "Answered rows by top-1 class, for the drift of predictions between versions.",
            ("model", "version", "variant", "class"),
            registry=self.registry,
        )
        return [family.labels(*self._values, str(index)) for index in range(classes)]

    def _histogram(self, name: str, documentation: str) -> Histogram:
        family = Histogram(
            name, documentation, ("model", "version", "variant"),
            buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        return family.labels(*self._values)

    def count_request(self, code: int, duration_s: float) -> None:
        """Count one answered request and observe its latency."""
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self._requests.labels(*self._values, str(code))
        counter.inc()
        self.latency_s.observe(duration_s)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
