"""The payload collector: reads every routed replica's payload log into the registry.

Each pass asks each ready replica in the route table for the records after the last one it
kept (``GET /ferryman/v1/payloads?after=SEQ``); a replica that restarted has a new
instance id, so its sequence starts afresh. Storing is idempotent (instance, sequence), so
a control plane that restarts and reads a ring again keeps nothing twice. Every so often
it forgets what is past the retention.

A pass reads each replica until it has caught up (pages of ``PAGE``), within a time budget
per replica, so a busy replica's ring is emptied each pass rather than a fixed few pages of
it. Each page's totals (answered, sampled out at the declared rate, dropped unread) are
kept per replica instance beside the records; the records a page says are gone after the
collector's cursor are counted as dropped in the same transaction as the records it kept
(exact: the collector knows what it stored), and logged once per ``warn_every_s`` per
replica. A collector without a cursor for an instance resumes after the highest sequence
the registry holds of it. Loss is counted and shown, never silent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import httpx
import orjson
from pydantic import ValidationError

from ferryman.gateway.routes import RouteTable
from ferryman.registry import CollectedPayload, PayloadTotals, Registry
from ferryman.types import Clock

logger = logging.getLogger(__name__)

PAGE = 10_000
BUDGET_S = 0.5
"""Longest a pass reads one replica before it moves on (the rest waits for the next pass)."""


@dataclass(frozen=True)
class Retention:
    """How much of the payload log the registry keeps."""

    retention_s: float = 7 * 24 * 3600
    max_rows_per_endpoint: int = 200_000
    prune_every_s: float = 60.0
    warn_every_s: float = 60.0
    """Each replica whose log dropped records is logged at most once per this window."""


@dataclass(frozen=True)
class Page:
    """One answer of a replica's payload log."""

    instance: str
    next: int
    dropped: int
    records: list[CollectedPayload]
    sample_rate: float = 1.0
    totals: PayloadTotals = field(default_factory=PayloadTotals)


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
        self._warned: dict[str, tuple[float, int]] = {}  # url -> (last line, missed since)

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
            self._warned.pop(gone, None)
        self._prune()
        return kept

    def _collect(self, url: str, endpoint: str, variant: str, key: tuple[str, int]) -> int:
        kept = 0
        started = self._clock()
        page = None
        while self._clock() - started < BUDGET_S:
            instance, after = self._cursors.get(url, ("", 0))
            page = self._read(url, instance, after)
            if page is None:
                break
            if page.instance != instance:  # a first look, or a new replica process
                resume = self._registry.payloads.last_seq(page.instance)
                self._cursors[url] = (page.instance, resume)
                continue
            self._registry.payloads.add(
                endpoint, variant, key, instance, page.records, missed=page.dropped
            )
            self._cursors[url] = (instance, page.next)
            kept += len(page.records)
            if page.dropped:
                self._warn_of_drops(url, page.dropped)
            if len(page.records) < PAGE:
                break
        if page is not None:
            self._registry.payloads.tally(
                endpoint, variant, page.instance, page.sample_rate, page.totals
            )
        return kept

    def _warn_of_drops(self, url: str, missed: int) -> None:
        """Log what a replica's log dropped before collection, once per window per replica,
        with the count since the last line."""
        now = self._clock()
        when, count = self._warned.get(url, (None, 0))
        count += missed
        if when is not None and now - when < self._retention.warn_every_s:
            self._warned[url] = (when, count)
            return
        self._warned[url] = (now, 0)
        logger.warning(
            "%s: %d payload records were gone before collection (counted as dropped beside "
            "the quality figures); raise serving.payload_log_capacity, collect more often, "
            "or declare serving.payload_sample_rate",
            url, count,
        )  # fmt: skip

    def _read(self, url: str, instance: str, after: int) -> Page | None:
        """A page after ``after``; asking for it tells the replica the records up to
        ``after`` of ``instance`` are kept (so they no longer count as dropped if pushed out)."""
        try:
            answer = self._http.get(
                f"{url}/ferryman/v1/payloads",
                params={"after": after, "limit": PAGE, "instance": instance},
            )
            answer.raise_for_status()
            document = orjson.loads(answer.content)
            return Page(
                instance=str(document["instance"]),
                next=int(document["next"]),
                dropped=int(document["dropped"]),
                records=[CollectedPayload.model_validate(r) for r in document["records"]],
                sample_rate=float(document.get("sample_rate", 1.0)),
                totals=PayloadTotals.model_validate(document.get("totals", {})),
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
