"""The load on each variant, scraped from the replicas' and the gateway's /metrics.

In-flight requests come from each ready replica's ``ferryman_in_flight_requests`` gauge,
the request rate from the growth of its ``ferryman_requests_total`` counters between two
scrapes, and requests held for lack of a replica from the gateway's
``ferryman_gateway_held_requests`` gauge. A replica that does not answer counts as idle.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ferryman.control.plan import Slot
from ferryman.control.reconciler import Load
from ferryman.control.runtime import Replica, ReplicaState


class ScrapedLoad:
    """A :class:`~ferryman.control.reconciler.LoadSource` over Prometheus text endpoints."""

    def __init__(
        self, gateway_url: str | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gateway_url = gateway_url
        self._clock = clock
        self._http = httpx.Client(timeout=1.0)
        self._counts: dict[str, tuple[float, float]] = {}

    def load(self, slot: Slot, replicas: list[Replica]) -> Load:
        in_flight = qps = 0.0
        for replica in replicas:
            if replica.state is not ReplicaState.READY:
                continue
            samples = self._scrape(replica.url)
            in_flight += samples.get("ferryman_in_flight_requests", 0.0)
            qps += self._rate(replica.id, samples.get("ferryman_requests_total", 0.0))
        held = 0.0
        if self._gateway_url:
            held_by = self._scrape(self._gateway_url, by_label="endpoint")
            held = held_by.get(f"ferryman_gateway_held_requests/{slot[0]}", 0.0)
        return Load(in_flight=in_flight, qps=qps, held=int(held))

    def close(self) -> None:
        self._http.close()

    def _rate(self, replica_id: str, count: float) -> float:
        now = self._clock()
        before = self._counts.get(replica_id)
        self._counts[replica_id] = (now, count)
        if before is None or now <= before[0] or count < before[1]:
            return 0.0
        return (count - before[1]) / (now - before[0])

    def _scrape(self, url: str, by_label: str | None = None) -> dict[str, float]:
        """Sample sums by name (or ``name/label-value`` when ``by_label`` is given)."""
        try:
            text = self._http.get(f"{url}/metrics").text
        except httpx.HTTPError:
            return {}
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.name
                if by_label is not None:
                    key = f"{sample.name}/{sample.labels.get(by_label, '')}"
                sums[key] = sums.get(key, 0.0) + sample.value
        return sums
