"""The monitor: every ``interval_s`` a sample per variant, kept, judged by the alert rules.

Each tick the control loop gives it, the monitor checks whether a sample is due; if so it
reads the world (:class:`ScrapedReadings`: the gateway's and the routed replicas' metrics,
the replicas' CPU and memory, the route table, feedback signals, recent restarts), turns
the last two readings into samples (``sampling.sample``, pure), appends them to the
in-memory history and — in one transaction — to the registry's copy, then evaluates the
alert rules (``alerts.evaluate``, pure), records what fired or resolved, and hands those
events to the webhook sender, whose own thread delivers them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ferryman.control.alerts import AlertState, effective_rules, evaluate
from ferryman.control.drift import PREDICTIONS, Classes
from ferryman.control.history import History
from ferryman.control.local import ReplicaProcess
from ferryman.control.routes import RouteTable
from ferryman.control.sampling import Reading, ReplicaReading, VariantReading, sample
from ferryman.control.traffic import Key, Traffic, traffic_by_variant
from ferryman.control.usage import Usage, process_usage
from ferryman.registry import (
    AlertRecord,
    AlertStatus,
    DeploymentRecord,
    MetricSample,
    Registry,
    WebhookTarget,
)

logger = logging.getLogger(__name__)

ACTOR = "monitor"
RESTART_WINDOW_S = 600.0
BATCH_ROWS = "ferryman_batch_size_sum"
BATCHES = "ferryman_batch_size_count"


class ReadingSource(Protocol):
    def read(self) -> Reading:
        """Everything the monitor reads, now."""
        ...


class Notifier(Protocol):
    def send(self, target: WebhookTarget, event: str, payload: dict[str, Any]) -> bool: ...


class Monitor:
    def __init__(
        self,
        registry: Registry,
        source: ReadingSource,
        notifier: Notifier,
        *,
        interval_s: float = 10.0,
        retention_s: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._source = source
        self._notifier = notifier
        self._interval_s = interval_s
        self._retention_s = retention_s
        self._clock = clock
        self.history = History(retention_s, interval_s)
        self._state = AlertState()
        self._previous: Reading | None = None
        self._due_s: float | None = None

    def restore(self, now_s: float | None = None) -> int:
        """Reload the retained history and the alerts firing; how many samples came back."""
        now_s = time.time() if now_s is None else now_s
        samples = self._registry.history.since(now_s - self._retention_s)
        self.history.add(samples)
        self._state = AlertState.of_firing(
            self._registry.alerts.find(AlertStatus.FIRING, limit=1000)
        )
        return len(samples)

    def tick(self) -> list[MetricSample] | None:
        """Sample if one is due: the samples taken ([] on the first reading), else None."""
        now_s = self._clock()
        if self._due_s is not None and now_s < self._due_s:
            return None
        self._due_s = now_s + self._interval_s
        reading = self._source.read()
        previous, self._previous = self._previous, reading
        if previous is None:
            return []
        samples = sample(previous, reading)
        self.history.add(samples)
        self._registry.history.add(samples, self._retention_s)
        self._judge(samples, now_s)
        logger.debug("monitor: %d samples in %.0f ms", len(samples),
                     (self._clock() - now_s) * 1000)  # fmt: skip
        return samples

    def _judge(self, samples: Sequence[MetricSample], now_s: float) -> None:
        rules = effective_rules(self._registry.alerts.rules())
        outcome = evaluate(rules, samples, self._state, now_s)
        changed = self._registry.alerts.record(outcome.fired, outcome.resolved, ACTOR)
        self._state = outcome.state
        if changed:
            self._notify(changed)

    def _notify(self, changed: Iterable[AlertRecord]) -> None:
        targets = self._registry.alerts.webhook_targets()
        for alert in changed:
            event = "alert.fired" if alert.state is AlertStatus.FIRING else "alert.resolved"
            logger.warning("%s: %s", event, alert.message)
            for target in targets:
                self._notifier.send(target, event, {"alert": alert.model_dump(mode="json")})


@dataclass(frozen=True)
class LoopView:
    """What the control loop knows, read when a sample is due."""

    table: Callable[[], RouteTable | None]
    """The route table in force."""
    processes: Callable[[], list[ReplicaProcess]]
    """The replica processes running (ready or starting)."""
    signals: Callable[[], dict[Key, dict[str, float]]]
    """Accuracy, F1 and input drift per variant (``FeedbackSignals.series``)."""


class ScrapedReadings:
    """A :class:`ReadingSource` over the real world: HTTP, /proc and the registry."""

    def __init__(
        self,
        registry: Registry,
        http: httpx.Client,
        gateway_url: str,
        view: LoopView,
        usage: Callable[[int], Usage | None] = process_usage,
    ) -> None:
        self._registry = registry
        self._http = http
        self._gateway_url = gateway_url
        self._view = view
        self._usage = usage

    def read(self) -> Reading:
        at_s, time_s = time.monotonic(), time.time()
        table = self._view.table()
        processes = self._view.processes()
        variants = variant_readings(self._registry.deployments.list(), table, processes)
        return Reading(
            at_s=at_s,
            time_s=time_s,
            traffic=self._gateway(),
            variants=variants,
            replicas=self._replicas(table, processes),
            signals=self._view.signals(),
            restarts=self._restarts(variants),
        )

    def _gateway(self) -> dict[Key, Traffic] | None:
        try:
            return traffic_by_variant(self._http.get(f"{self._gateway_url}/metrics").text)
        except httpx.HTTPError:
            return None

    def _replicas(
        self, table: RouteTable | None, processes: list[ReplicaProcess]
    ) -> dict[str, ReplicaReading]:
        found: dict[str, ReplicaReading] = {}
        pids = {process.url: process.pid for process in processes}
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                for url in variant.backends:
                    usage = self._usage_of(pids.get(url))
                    found[url] = _replica((endpoint, variant.name), self._counters(url), usage)
        for process in processes:  # starting replicas use CPU and memory too
            if process.url not in found:
                usage = self._usage_of(process.pid)
                found[process.url] = _replica(process.spec.slot, None, usage)
        return found

    def _counters(self, url: str) -> tuple[float, float, Classes] | None:
        try:
            return replica_counters(self._http.get(f"{url}/metrics").text)
        except httpx.HTTPError:
            return None

    def _usage_of(self, pid: int | None) -> Usage | None:
        return None if pid is None else self._usage(pid)

    def _restarts(self, variants: Mapping[Key, VariantReading]) -> dict[Key, int]:
        since = datetime.now(UTC) - timedelta(seconds=RESTART_WINDOW_S)
        failed = self._registry.list_events(action="replica.failed", since=since, limit=10_000)
        return restarts_by_slot((event.object_key for event in failed), variants)


def _replica(
    slot: Key, counters: tuple[float, float, Classes] | None, usage: Usage | None
) -> ReplicaReading:
    rows, batches, classes = counters if counters is not None else (0.0, 0.0, {})
    return ReplicaReading(
        slot[0], slot[1], rows, batches, classes,
        cpu_s=usage.cpu_s if usage else None, rss_bytes=usage.rss_bytes if usage else None,
        is_scraped=counters is not None,
    )  # fmt: skip


def replica_counters(text: str) -> tuple[float, float, Classes]:
    """(rows batched, batches, top-1 class counts) in one replica's /metrics text."""
    rows = batches = 0.0
    classes: Classes = {}
    for family in text_string_to_metric_families(text):
        for sample_ in family.samples:
            if sample_.name == BATCH_ROWS:
                rows += sample_.value
            elif sample_.name == BATCHES:
                batches += sample_.value
            elif sample_.name == PREDICTIONS:
                name = sample_.labels.get("class", "")
                classes[name] = classes.get(name, 0.0) + sample_.value
    return rows, batches, classes


def variant_readings(
    deployments: Sequence[DeploymentRecord],
    table: RouteTable | None,
    processes: Sequence[ReplicaProcess],
) -> dict[Key, VariantReading]:
    """Weight, ready and desired replicas of every deployed variant; the heaviest is main."""
    running: dict[Key, int] = {}
    for process in processes:
        running[process.spec.slot] = running.get(process.spec.slot, 0) + 1
    found: dict[Key, VariantReading] = {}
    for deployment in deployments:
        spec = deployment.spec
        route = table.endpoints.get(deployment.endpoint) if table else None
        routed = {v.name: v for v in route.variants} if route else {}
        weights = {v.name: float(routed[v.name].weight if v.name in routed else v.weight)
                   for v in spec.variants}  # fmt: skip
        serving = [v.name for v in spec.variants if v.name != spec.shadow]
        main = max(serving, key=lambda name: weights[name], default=None)
        for variant in spec.variants:
            key = (deployment.endpoint, variant.name)
            desired = variant.replicas
            if spec.autoscaling is not None:
                bounds = spec.autoscaling
                desired = min(bounds.max_replicas, max(bounds.min_replicas, running.get(key, 0)))
            ready = len(routed[variant.name].backends) if variant.name in routed else 0
            found[key] = VariantReading(weights[variant.name], ready, desired, variant.name == main)
    return found


def restarts_by_slot(replica_ids: Iterable[str], slots: Iterable[Key]) -> dict[Key, int]:
    """Count replica ids (``<endpoint>-<variant>-<8 hex>``) per slot, longest match first."""
    prefixes = sorted(((f"{e}-{v}-", (e, v)) for e, v in slots), key=lambda p: -len(p[0]))
    counts: dict[Key, int] = {}
    for replica_id in replica_ids:
        for prefix, slot in prefixes:
            if replica_id.startswith(prefix) and len(replica_id) == len(prefix) + 8:
                counts[slot] = counts.get(slot, 0) + 1
                break
    return counts
