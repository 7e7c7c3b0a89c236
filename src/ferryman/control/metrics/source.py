"""The ``MetricsSource`` seam: what the fleet's ``/metrics`` say, read once per tick.

The control loop reads every gateway and every ready replica once a tick into one
:class:`FleetMetrics`; the reconciler (load), the rollout controller (traffic, predictions,
a shadow's own answers) and the monitor (batching, class counts) all read that one value, so
nothing else in the control plane fetches ``/metrics``. :class:`ScrapedMetrics` reads over
HTTP; :class:`InMemoryMetrics` is the stand-in for tests. A Prometheus server, when one is
named, is the rollouts' second source of the gateway's traffic
(:class:`~ferryman.control.metrics.promql.PrometheusTraffic`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ferryman.control.analysis.drift import PREDICTIONS, Classes, class_counts
from ferryman.control.metrics.traffic import Traffic, replica_traffic, traffic_by_variant
from ferryman.gateway.routes import RouteTable
from ferryman.types import Clock, Slot

BATCH_ROWS = "ferryman_batch_size_sum"
BATCHES = "ferryman_batch_size_count"
IN_FLIGHT = "ferryman_in_flight_requests"
PROMPT_TOKENS = "ferryman_llm_prompt_tokens_total"
COMPLETION_TOKENS = "ferryman_llm_completion_tokens_total"
HELD = "ferryman_gateway_held_requests"


@dataclass(frozen=True)
class ReplicaScrape:
    """One replica's counters: its own traffic, predictions, batching and requests in flight."""

    traffic: Traffic = field(default_factory=Traffic)
    classes: Classes = field(default_factory=dict)
    rows: float = 0.0
    """Rows batched so far (the sum of the batch-size histogram)."""
    batches: float = 0.0
    in_flight: float = 0.0
    prompt_tokens: float = 0.0
    """A language model's prompt tokens read so far."""
    completion_tokens: float = 0.0
    """A language model's output tokens so far."""


@dataclass(frozen=True)
class FleetMetrics:
    """What the gateways and replicas said at one moment of the monotonic clock."""

    at_s: float
    gateway: dict[Slot, Traffic] | None = None
    """Traffic per (endpoint, variant) at the gateways; None when none could be read."""
    held: dict[str, float] = field(default_factory=dict)
    """Requests held at the gateways for lack of a ready replica, per endpoint."""
    replicas: dict[str, ReplicaScrape] = field(default_factory=dict)
    """By URL, every replica that answered."""

    def by_variant(self, table: RouteTable | None) -> dict[Slot, list[ReplicaScrape]]:
        """The answering replicas of every routed variant."""
        found: dict[Slot, list[ReplicaScrape]] = {}
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                scrapes = (self.replicas.get(url) for url in variant.backends)
                found[(endpoint, variant.name)] = [s for s in scrapes if s is not None]
        return found


class MetricsSource(Protocol):
    def read(self, gateway_urls: Sequence[str], replica_urls: Sequence[str]) -> FleetMetrics:
        """Every gateway's and replica's counters now (what does not answer is left out)."""
        ...

    def close(self) -> None:
        """Release what reading holds (threads, connections)."""
        ...


SCRAPE_TIMEOUT_S = 0.5
"""The longest wait for one ``/metrics``: a frozen replica must not hold the whole tick."""


class ScrapedMetrics:
    """A :class:`MetricsSource` over HTTP: one GET of ``/metrics`` per gateway and replica,
    all at once (a replica that does not answer costs the tick one timeout, not one each)."""

    def __init__(
        self, http: httpx.Client, clock: Clock = time.monotonic, max_parallel: int = 16
    ) -> None:
        self._http = http
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="ferryman-scrape")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def read(self, gateway_urls: Sequence[str], replica_urls: Sequence[str]) -> FleetMetrics:
        at_s = self._clock()
        urls = [*gateway_urls, *replica_urls]
        texts = dict(zip(urls, self._pool.map(self._get, urls), strict=True))
        gateway: dict[Slot, Traffic] | None = None
        held: dict[str, float] = {}
        for url in gateway_urls:
            text = texts[url]
            if text is None:
                continue
            gateway = _merged(gateway or {}, traffic_by_variant(text))
            for endpoint, count in held_requests(text).items():
                held[endpoint] = held.get(endpoint, 0.0) + count
        replicas = {}
        for url in replica_urls:
            text = texts[url]
            if text is not None:
                replicas[url] = replica_scrape(text)
        return FleetMetrics(at_s, gateway, held, replicas)

    def _get(self, url: str) -> str | None:
        try:
            answer = self._http.get(f"{url}/metrics", timeout=SCRAPE_TIMEOUT_S)
        except httpx.HTTPError:
            return None
        return answer.text if answer.status_code == 200 else None


@dataclass
class InMemoryMetrics:
    """A :class:`MetricsSource` that answers what a test sets in ``fleet`` (or ``script``)."""

    fleet: FleetMetrics = field(default_factory=lambda: FleetMetrics(0.0))
    script: Callable[[], FleetMetrics] | None = None
    reads: int = 0

    def read(self, gateway_urls: Sequence[str], replica_urls: Sequence[str]) -> FleetMetrics:
        self.reads += 1
        return self.script() if self.script is not None else self.fleet

    def close(self) -> None:
        pass


def replica_scrape(text: str) -> ReplicaScrape:
    """Parse one replica's ``/metrics`` text."""
    rows, batches, classes = replica_counters(text)
    sums = dict.fromkeys((IN_FLIGHT, PROMPT_TOKENS, COMPLETION_TOKENS), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    return ReplicaScrape(
        replica_traffic(text), classes, rows, batches, sums[IN_FLIGHT],
        sums[PROMPT_TOKENS], sums[COMPLETION_TOKENS],
    )  # fmt: skip


def replica_counters(text: str) -> tuple[float, float, Classes]:
    """(rows batched, batches, top-1 class counts) in one replica's /metrics text."""
    rows = batches = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == BATCH_ROWS:
                rows += sample.value
            elif sample.name == BATCHES:
                batches += sample.value
    return rows, batches, class_counts(text)


def held_requests(text: str) -> dict[str, float]:
    """Requests a gateway holds for lack of a ready replica, per endpoint."""
    held: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == HELD:
                endpoint = sample.labels.get("endpoint", "")
                held[endpoint] = held.get(endpoint, 0.0) + sample.value
    return held


def _merged(into: dict[Slot, Traffic], more: Mapping[Slot, Traffic]) -> dict[Slot, Traffic]:
    """Traffic of several gateways, added up per variant."""
    for key, traffic in more.items():
        before = into.get(key)
        if before is None:
            into[key] = traffic
            continue
        buckets = dict(before.buckets)
        for bound, count in traffic.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
        shadow = dict(before.shadow)
        for outcome, count in traffic.shadow.items():
            shadow[outcome] = shadow.get(outcome, 0.0) + count
        into[key] = Traffic(
            before.requests + traffic.requests, before.errors + traffic.errors, buckets, shadow,
            client_errors=before.client_errors + traffic.client_errors,
        )  # fmt: skip
    return into


__all__ = [
    "PREDICTIONS",
    "FleetMetrics",
    "InMemoryMetrics",
    "MetricsSource",
    "ReplicaScrape",
    "ScrapedMetrics",
]
