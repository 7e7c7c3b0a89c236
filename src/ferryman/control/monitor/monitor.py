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

from ferryman.control.metrics.source import FleetMetrics, ReplicaScrape
from ferryman.control.monitor.alerts import AlertState, effective_rules, evaluate
from ferryman.control.monitor.history import History
from ferryman.control.monitor.sampling import Reading, ReplicaReading, VariantReading, sample
from ferryman.gateway.routes import RouteTable
from ferryman.registry import (
    AlertRecord,
    AlertStatus,
    DeploymentRecord,
    EventRecord,
    MetricSample,
    Registry,
    WebhookTarget,
)
from ferryman.runtimes.base import Replica, ReplicaState
from ferryman.types import Clock, Slot

logger = logging.getLogger(__name__)

ACTOR = "monitor"
RESTART_WINDOW_S = 600.0


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
        clock: Clock = time.monotonic,
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
    replicas: Callable[[], list[Replica]]
    """The replicas the runtime last observed (with their CPU and memory, where known)."""
    signals: Callable[[], dict[Slot, dict[str, float]]]
    """Accuracy, F1, the thumbs-up rate and input drift per variant
    (``FeedbackSignals.series``)."""
    fleet: Callable[[], FleetMetrics]
    """What the gateways and replicas said this tick."""


class ScrapedReadings:
    """A :class:`ReadingSource` over the real world: HTTP, the runtime and the registry."""

    def __init__(self, registry: Registry, view: LoopView) -> None:
        self._registry = registry
        self._view = view

    def read(self) -> Reading:
        at_s, time_s = time.monotonic(), time.time()
        table = self._view.table()
        fleet = self._view.fleet()
        running = [r for r in self._view.replicas() if r.state is not ReplicaState.FAILED]
        variants = variant_readings(self._registry.deployments.list(), table, running)
        return Reading(
            at_s=at_s,
            time_s=time_s,
            traffic=fleet.gateway,
            variants=variants,
            replicas=_replicas(fleet, table, running),
            signals=self._view.signals(),
            restarts=self._restarts(variants),
        )

    def _restarts(self, variants: Mapping[Slot, VariantReading]) -> dict[Slot, int]:
        since = datetime.now(UTC) - timedelta(seconds=RESTART_WINDOW_S)
        failed = self._registry.list_events(action="replica.failed", since=since, limit=10_000)
        return restarts_by_slot(failed, variants)


def _replicas(
    fleet: FleetMetrics, table: RouteTable | None, running: list[Replica]
) -> dict[str, ReplicaReading]:
    """A reading of every routed replica, and of the starting ones (they use CPU too)."""
    found: dict[str, ReplicaReading] = {}
    by_url = {replica.url: replica for replica in running}
    for endpoint, route in table.endpoints.items() if table else ():
        for variant in route.variants:
            for url in variant.backends:
                slot = (endpoint, variant.name)
                found[url] = _replica(slot, fleet.replicas.get(url), by_url.get(url))
    for replica in running:
        if replica.url not in found:
            found[replica.url] = _replica(replica.spec.slot, None, replica)
    return found


def _replica(slot: Slot, scrape: ReplicaScrape | None, replica: Replica | None) -> ReplicaReading:
    counters = (scrape.rows, scrape.batches, scrape.classes) if scrape else (0.0, 0.0, {})
    return ReplicaReading(
        slot[0], slot[1], *counters,
        cpu_s=replica.cpu_s if replica else None, rss_bytes=replica.rss_bytes if replica else None,
        is_scraped=scrape is not None,
        in_flight=scrape.in_flight if scrape else 0.0,
        prompt_tokens=scrape.prompt_tokens if scrape else 0.0,
        completion_tokens=scrape.completion_tokens if scrape else 0.0,
    )  # fmt: skip


def variant_readings(
    deployments: Sequence[DeploymentRecord],
    table: RouteTable | None,
    replicas: Sequence[Replica],
) -> dict[Slot, VariantReading]:
    """Weight, ready and desired replicas of every deployed variant; the heaviest is main."""
    running: dict[Slot, int] = {}
    for replica in replicas:
        running[replica.spec.slot] = running.get(replica.spec.slot, 0) + 1
    found: dict[Slot, VariantReading] = {}
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


def restarts_by_slot(failures: Iterable[EventRecord], slots: Iterable[Slot]) -> dict[Slot, int]:
    """Count ``replica.failed`` events per deployed slot, by the slot each event names."""
    wanted = set(slots)
    counts: dict[Slot, int] = {}
    for event in failures:
        slot = (str(event.details.get("endpoint")), str(event.details.get("variant")))
        if slot in wanted:
            counts[slot] = counts.get(slot, 0) + 1
    return counts
