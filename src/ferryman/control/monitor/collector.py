"""The payload collector: reads every routed replica's payload log into the registry.

Each pass asks each ready replica in the route table for the records after the last one it
kept (``GET /ferryman/v1/payloads?after=SEQ``); a replica that restarted has a new
instance id, so its sequence starts afresh. Storing is idempotent (instance, sequence), so
a control plane that restarts and reads a ring again keeps nothing twice. Every so often
it forgets what is past the retention.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from ferryman.gateway.routes import RouteTable
from ferryman.registry import CollectedPayload, Registry
from ferryman.types import Clock

logger = logging.getLogger(__name__)

PAGE = 1_000
PAGES_PER_PASS = 5


@dataclass(frozen=True)
class Retention:
    """How much of the payload log the registry keeps."""

    retention_s: float = 7 * 24 * 3600
    max_rows_per_endpoint: int = 200_000
    prune_every_s: float = 60.0


@dataclass(frozen=True)
class Page:
    """One answer of a replica's payload log."""

    instance: str
    next: int
    dropped: int
    records: list[CollectedPayload]


class PayloadCollector:
    def __init__(
        self,
        registry: Registry,
        http: httpx.Client,
        retention: Retention,
        clock: Clock = time.monotonic,
    ) -> None:
        self._registry = registry
        self._http = http
        self._retention = retention
        self._clock = clock
        self._cursors: dict[str, tuple[str, int]] = {}  # url -> (instance, last seq kept)
        self._pruned_at: float | None = None

    def tick(self, table: RouteTable | None) -> int:
        """Collect from every routed replica; returns how many records were kept."""
        kept = 0
        routed: set[str] = set()
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                for url in variant.backends:
                    routed.add(url)
                    key = (variant.model, variant.version)
                    kept += self._collect(url, endpoint, variant.name, key)
        for gone in set(self._cursors) - routed:
            del self._cursors[gone]
        self._prune()
        return kept

    def _collect(self, url: str, endpoint: str, variant: str, key: tuple[str, int]) -> int:
        kept = 0
        for _ in range(PAGES_PER_PASS):
            instance, after = self._cursors.get(url, ("", 0))
            page = self._read(url, after)
            if page is None:
                return kept
            if page.instance != instance:  # a new replica process: its sequence restarts
                self._cursors[url] = (page.instance, 0)
                continue
            if page.dropped:
                logger.warning("%s: %d payload records were gone before collection",
                               url, page.dropped)  # fmt: skip
            self._registry.payloads.add(endpoint, variant, key, instance, page.records)
            self._cursors[url] = (instance, page.next)
            kept += len(page.records)
            if len(page.records) < PAGE:
                return kept
        return kept

    def _read(self, url: str, after: int) -> Page | None:
        try:
            answer = self._http.get(
                f"{url}/ferryman/v1/payloads", params={"after": after, "limit": PAGE}
            )
            answer.raise_for_status()
            document = answer.json()
            return Page(
                instance=str(document["instance"]),
                next=int(document["next"]),
                dropped=int(document["dropped"]),
                records=[CollectedPayload.model_validate(r) for r in document["records"]],
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError, ValidationError) as exc:
            logger.debug("payloads of %s not read: %s", url, exc)
            return None

    def _prune(self) -> None:
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < self._retention.prune_every_s:
            return
        self._pruned_at = now
        removed = self._registry.payloads.prune(
            self._retention.retention_s, self._retention.max_rows_per_endpoint
        )
        if removed:
            logger.info("payload log: %d records past the retention forgotten", removed)
