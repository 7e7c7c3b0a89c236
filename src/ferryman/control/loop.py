"""The control loop of ``ferryman up``: the reconciler ticking in a thread it owns.

Each pass: reconcile replicas (the runtime keeps the gateways running and holding the
route table), step rollouts, and let the monitor sample (every ``monitor_interval_s``).
Two parts run on threads of their own, so neither holds a pass nor is held by one: the
webhook sender delivers alert events (a slow receiver), and the payload collection reads
the replicas' payload logs into the registry (a busy replica's ring fills in seconds).

Stopping the loop (or killing the process) leaves replicas and the gateway running: they
serve on while the control plane is away, and the next start re-adopts them.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import httpx

from ferryman.config import Settings
from ferryman.control.analysis.drift import Classes
from ferryman.control.exports.prometheus import TARGETS_FILE, write_targets
from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.control.metrics.promql import PrometheusTraffic
from ferryman.control.metrics.source import FleetMetrics, MetricsSource, ScrapedMetrics
from ferryman.control.metrics.traffic import Traffic, summed
from ferryman.control.monitor.collector import PayloadCollection, PayloadCollector, Retention
from ferryman.control.monitor.monitor import LoopView, Monitor, ScrapedReadings
from ferryman.control.monitor.webhooks import RetryPolicy, WebhookSender
from ferryman.control.outbound import OutboundPolicy, PinnedTransport
from ferryman.control.reconcile.load import FleetLoad
from ferryman.control.reconcile.reconciler import Reconciler
from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources, TrafficSource
from ferryman.errors import FerrymanError
from ferryman.fleet_secret import load_or_create_fleet_secret, replica_headers
from ferryman.gateway.routes import RouteTable
from ferryman.registry import Registry, RolloutRecord
from ferryman.runtimes import ReplicaState, Runtime, create_runtime
from ferryman.types import Clock, Slot

logger = logging.getLogger(__name__)


class ControlLoop:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        runtime: Runtime | None = None,
        metrics: MetricsSource | None = None,
        clock: Clock = time.monotonic,
        *,
        control_token: str | None = None,
    ) -> None:
        """``control_token`` is handed to a runtime whose gateways watch the route table
        over the API (``ray``)."""
        self._settings = settings
        self._outbound = OutboundPolicy.from_settings(settings)
        if settings.control.prometheus_url:  # refused at start, with why; each query again
            self._outbound.check_url(settings.control.prometheus_url)
        secret = load_or_create_fleet_secret(settings.data_dir)
        self._registry = registry
        self.registry_id = registry.identity()
        self.runtime = (
            runtime
            if runtime is not None
            else create_runtime(settings, control_token, self.registry_id, secret)
        )
        # Replicas (and the gateway) are sent the fleet secret; nothing else is (Prometheus).
        self._http = httpx.Client(timeout=1.0, headers=replica_headers(secret))
        # The collection's own client: a page of a busy replica's log may take over a second.
        self._payload_http = httpx.Client(timeout=10.0, headers=replica_headers(secret))
        self.metrics = metrics if metrics is not None else ScrapedMetrics(self._http)
        self.fleet = FleetMetrics(0.0)
        """What the gateways and replicas said this tick (read once, shared by every part)."""
        self._load = FleetLoad()
        self.reconciler = Reconciler(
            registry,
            self.runtime,
            load=self._load,
            clock=clock,
            route_grace_s=settings.control.route_grace_s,
            registry_id=self.registry_id,
        )
        self.signals = FeedbackSignals(registry)
        # Calls to URLs people give (Prometheus): checked, pinned, no proxies from the env.
        self._outbound_http = httpx.Client(
            timeout=5.0, transport=PinnedTransport(self._outbound), trust_env=False
        )
        self.traffic = self._traffic_source(settings)
        """The gateway's traffic totals that rollouts are judged on."""
        sources = Sources(
            traffic=self.traffic,
            predictions=self._replica_predictions,
            signals=self.signals.for_rollout,
            accuracy=self._accuracy,
            pools=self._pools,
            replicas=self._replica_traffic,
        )
        self.rollouts = RolloutController(registry, sources, clock)
        control = settings.control
        collector = PayloadCollector(
            registry,
            self._payload_http,
            Retention(control.payload_retention_s, control.payload_max_rows_per_endpoint),
        )
        self.payload_collection = PayloadCollection(
            collector, self.routes, control.payload_collect_interval_s
        )
        self.webhooks = WebhookSender(
            RetryPolicy(
                max_attempts=control.webhook_max_attempts,
                base_s=control.webhook_retry_base_s,
                max_s=control.webhook_retry_max_s,
                timeout_s=control.webhook_timeout_s,
            ),
            control.webhook_queue_capacity,
            transport=PinnedTransport(self._outbound),
            outbox=registry.outbox,
            targets=registry.alerts.webhook_targets,
        )
        view = LoopView(
            table=lambda: self.reconciler.state.table,
            replicas=lambda: self.reconciler.state.observed,
            signals=self.signals.series,
            fleet=lambda: self.fleet,
        )
        self.monitor = Monitor(
            registry,
            ScrapedReadings(registry, view),
            self.webhooks,
            interval_s=control.monitor_interval_s,
            retention_s=control.history_retention_s,
            clock=clock,
        )
        self._targets_path = settings.data_dir / TARGETS_FILE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferryman-control-loop", daemon=True)

    def start(self) -> None:
        restored = self.monitor.restore()
        logger.info("metric history: %d samples restored", restored)
        self.webhooks.start()
        self._thread.start()
        self.payload_collection.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # a loop never started has nothing to wait for
            self._thread.join(timeout=30)
        self.payload_collection.stop()
        self.webhooks.stop()
        self.metrics.close()
        self._http.close()
        self._payload_http.close()
        self._outbound_http.close()
        self.runtime.close()

    def stop_fleet(self) -> int:
        """Stop the passes (so nothing restarts), then every replica and the gateway;
        how many replicas ran. :meth:`stop` still closes the rest afterwards."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return self.shut_down_data_plane()

    def routes(self) -> RouteTable | None:
        """The route table of the last pass (what ``GET /api/v1/routes`` serves)."""
        return self.reconciler.state.table

    def shut_down_data_plane(self) -> int:
        """Stop every replica and the gateway of this fleet; how many replicas ran."""
        return self.runtime.stop_fleet()

    def _is_own_registry(self) -> bool:
        """False (and an error logged) if the database is no longer the registry we started
        on: removed, replaced or unreadable. The loop then acts on nothing."""
        try:
            found = self._registry.identity()
        except FerrymanError as exc:
            logger.error("control loop pass skipped: %s", exc.message)
            return False
        if found != self.registry_id:
            logger.error(
                "control loop pass skipped: the database is now registry %s, not %s; "
                "restart the control plane with the right --database-url",
                found,
                self.registry_id,
            )
            return False
        return True

    def _traffic_source(self, settings: Settings) -> TrafficSource:
        """The gateway's traffic as rollouts judge it: from Prometheus when one is named."""
        url = settings.control.prometheus_url
        if url is None:
            return self._gateway_traffic
        logger.info("rollout analysis reads the gateway's traffic from Prometheus")
        return PrometheusTraffic(url, self._outbound_http)

    def _gateway_traffic(self) -> dict[Slot, Traffic] | None:
        return self.fleet.gateway

    def _replica_predictions(self) -> dict[Slot, Classes]:
        """Top-1 class counts per variant, summed over the replicas the gateway routes to."""
        found: dict[Slot, Classes] = {}
        for key, scrapes in self.fleet.by_variant(self.reconciler.state.table).items():
            counts: Classes = {}
            for scrape in scrapes:
                for name, count in scrape.classes.items():
                    counts[name] = counts.get(name, 0.0) + count
            found[key] = counts
        return found

    def _replica_traffic(self) -> dict[Slot, Traffic]:
        """Each routed variant's own requests, 5xx and latency, summed over its replicas."""
        by_variant = self.fleet.by_variant(self.reconciler.state.table)
        return {key: summed([s.traffic for s in scrapes]) for key, scrapes in by_variant.items()}

    def _pools(self) -> dict[Slot, tuple[int, int]]:
        """(ready replicas, failed starts since the last ready one) of every routed variant."""
        state = self.reconciler.state
        found: dict[Slot, tuple[int, int]] = {}
        for endpoint, route in state.table.endpoints.items() if state.table else ():
            for variant in route.variants:
                key = (endpoint, variant.name)
                backoff = state.backoff.get(key)
                found[key] = (len(variant.backends), backoff.failures if backoff else 0)
        return found

    def _accuracy(
        self, rollout: RolloutRecord, since: datetime | None
    ) -> dict[str, tuple[float, float]]:
        """(labelled, correct) of the rollout's two variants since ``since``."""
        found = {}
        for variant in (rollout.baseline, rollout.candidate):
            scores = self.signals.quality(rollout.endpoint, variant.name, since)
            found[variant.name] = (float(scores.labelled), float(scores.correct))
        return found

    def tick(self) -> None:
        """One pass: observe (read the fleet's metrics once), then each part decides and acts.

        Rollouts step before the reconciler, so a step's new weights reach the route table
        in the same pass.
        """
        ready = [r.url for r in self.reconciler.state.observed if r.state is ReplicaState.READY]
        self.fleet = self.metrics.read(self.runtime.gateway_urls(), ready)
        self._load.update(self.fleet)
        self.rollouts.tick()
        self.reconciler.tick()
        self.monitor.tick()
        write_targets(self._targets_path, self.reconciler.state.table)

    def _run(self) -> None:
        interval_s = self._settings.control.reconcile_interval_s
        while not self._stop.is_set():
            if not self._is_own_registry():
                self._stop.wait(interval_s)
                continue
            try:
                self.tick()
            except Exception:  # the loop must outlive any one failed pass
                logger.exception("control loop pass failed; retrying in %.1f s", interval_s)
            self._stop.wait(interval_s)
