"""The payload collector: reads every routed replica's payload log into the registry.

Each pass asks each ready replica in the route table for the records after the last one it
kept (``GET /ferryman/v1/payloads?after=SEQ``); a replica that restarted has a new
instance id, so its sequence starts afresh. Storing is idempotent (instance, sequence), so
a control plane that restarts and reads a ring again keeps nothing twice. Every so often
it forgets what is past the retention.

A pass reads each replica until it has caught up (pages of ``page_size``), within a time
budget per replica, so a busy replica's ring is emptied each pass rather than a fixed few
pages of it; a pass that ran out of budget leaves the collector ``is_behind``, and
:class:`PayloadCollection` (the collector on a thread of its own, as the control loop runs
it) starts the next pass at once instead of after an interval. Each page is kept in one
transaction (:meth:`~ferryman.registry.Payloads.keep`): its records, the records it says
are gone after the collector's cursor (counted as dropped, exactly: the collector knows
what it stored) and the replica's totals (answered, sampled out at the declared rate). The
cursor moves past a page only once the page is stored, so a control plane that stops or
dies mid-page reads that page again (from the registry's highest sequence, after a
restart): nothing it was handed is lost, and nothing is counted twice. Drops are logged once
per ``warn_every_s`` per replica. A collector without a cursor for an instance resumes
after the highest sequence the registry holds of it. Loss is counted and shown, never
silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import httpx
import orjson
from pydantic import ValidationError

from ferryman.gateway.routes import RouteTable
from ferryman.registry import CollectedPage, CollectedPayload, PayloadTotals, Registry
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


class Read(NamedTuple):
    """One answer of a replica's payload log: the page, and the cursor after it."""

    next: int
    page: CollectedPage


class PayloadCollector:
    def __init__(
        self,
        registry: Registry,
        http: httpx.Client,
        retention: Retention,
        clock: Clock = time.monotonic,
        *,
        page_size: int = PAGE,
    ) -> None:
        self._registry = registry
        self._http = http
        self._retention = retention
        self._clock = clock
        self._page_size = page_size
        self._cursors: dict[str, tuple[str, int]] = {}  # url -> (instance, last seq kept)
        self._pruned_at: float | None = None
        self._warned: dict[str, tuple[float, int]] = {}  # url -> (last line, missed since)
        self.is_behind = False
        """Whether the last pass left records unread (a replica's budget ran out)."""

    def tick(self, table: RouteTable | None, stopping: threading.Event | None = None) -> int:
        """Collect from every routed replica; returns how many records were kept. Once
        ``stopping`` is set, the pass keeps the page in hand and reads no more."""
        kept = 0
        self.is_behind = False
        routed: set[str] = set()
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                for url in variant.backends:
                    routed.add(url)
                    key = (variant.model, variant.version)
                    kept += self._collect(url, endpoint, variant.name, key, stopping)
        for gone in set(self._cursors) - routed:
            del self._cursors[gone]
            self._warned.pop(gone, None)
        self._prune()
        return kept

    def _collect(
        self,
        url: str,
        endpoint: str,
        variant: str,
        key: tuple[str, int],
        stopping: threading.Event | None,
    ) -> int:
        kept = 0
        started = self._clock()
        while not (stopping is not None and stopping.is_set()):
            instance, after = self._cursors.get(url, ("", 0))
            read = self._read(url, instance, after)
            if read is None:
                break
            page = read.page
            if page.instance != instance:  # a first look, or a new replica process
                resume = self._registry.payloads.last_seq(page.instance)
                self._cursors[url] = (page.instance, resume)
                continue
            kept += self._registry.payloads.keep(endpoint, variant, key, page)
            self._cursors[url] = (instance, read.next)
            if page.missed:
                self._warn_of_drops(url, page.missed)
            if len(page.records) < self._page_size:
                break  # caught up
            if self._clock() - started >= BUDGET_S:
                self.is_behind = True
                break
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

    def _read(self, url: str, instance: str, after: int) -> Read | None:
        """A page after ``after``; asking for it tells the replica the records up to
        ``after`` of ``instance`` are kept (so they no longer count as dropped if pushed out)."""
        try:
            answer = self._http.get(
                f"{url}/ferryman/v1/payloads",
                params={"after": after, "limit": self._page_size, "instance": instance},
            )
            answer.raise_for_status()
            document = orjson.loads(answer.content)
            page = CollectedPage(
                instance=str(document["instance"]),
                records=[CollectedPayload.model_validate(r) for r in document["records"]],
                missed=int(document["dropped"]),
                sample_rate=float(document.get("sample_rate", 1.0)),
                totals=PayloadTotals.model_validate(document.get("totals", {})),
            )
            return Read(int(document["next"]), page)
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


class PayloadCollection:
    """The collector on a thread of its own: a pass every ``interval_s`` (from the start of
    the last), and the next at once while a pass leaves records unread.

    Its own thread, so a slow control-loop pass (a rollout step, a migration-sized write)
    never holds back a busy replica's ring, which at full speed fills in seconds.
    ``stop`` lets the pass in hand keep the page it read, then returns.
    """

    def __init__(
        self,
        collector: PayloadCollector,
        table: Callable[[], RouteTable | None],
        interval_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._collector = collector
        self._table = table
        self._interval_s = interval_s
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="payload-collection", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = self._clock()
            try:
                self._collector.tick(self._table(), self._stopping)
                is_behind = self._collector.is_behind
            except Exception:  # the collection must outlive any one failed pass
                logger.exception("payload collection pass failed; retrying")
                is_behind = False  # a failed pass waits its interval: no loop of failures
            if not is_behind:
                self._stopping.wait(max(0.0, self._interval_s - (self._clock() - started)))
