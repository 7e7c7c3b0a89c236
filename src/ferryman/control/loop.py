"""The control loop of ``ferryman up``: the reconciler ticking in a thread it owns.

Each pass: keep the gateway running, reconcile replicas, collect payload logs, step
rollouts, and let the monitor sample (every ``monitor_interval_s``); the webhook sender
delivers alert events from a thread of its own, so a slow receiver never holds a pass.

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
from ferryman.control.collector import PayloadCollector, Retention
from ferryman.control.drift import Classes, class_counts
from ferryman.control.gateway_process import GatewayProcess
from ferryman.control.load import ScrapedLoad
from ferryman.control.local import LocalRuntime
from ferryman.control.monitor import LoopView, Monitor, ScrapedReadings
from ferryman.control.prometheus import TARGETS_FILE, write_targets
from ferryman.control.promql import PrometheusTraffic
from ferryman.control.reconciler import Reconciler
from ferryman.control.rollout_observer import Sources, TrafficSource
from ferryman.control.rollouts import RolloutController
from ferryman.control.signals import FeedbackSignals
from ferryman.control.traffic import Key, Traffic, replica_traffic, summed, traffic_by_variant
from ferryman.control.webhooks import RetryPolicy, WebhookSender
from ferryman.registry import Registry, RolloutRecord

logger = logging.getLogger(__name__)


class ControlLoop:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._settings = settings
        self.gateway = GatewayProcess(settings)
        self.runtime = LocalRuntime(
            settings, startup_timeout_s=settings.control.replica_startup_timeout_s
        )
        self._load = ScrapedLoad(self.gateway.url)
        self.reconciler = Reconciler(
            registry,
            self.runtime,
            settings.routes_path,
            load=self._load,
            route_grace_s=settings.control.route_grace_s,
        )
        self.signals = FeedbackSignals(registry)
        self._http = httpx.Client(timeout=1.0)
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
        self.rollouts = RolloutController(registry, sources)
        control = settings.control
        self._collector = PayloadCollector(
            registry,
            self._http,
            Retention(control.payload_retention_s, control.payload_max_rows_per_endpoint),
        )
        self._collected_at = 0.0
        self.webhooks = WebhookSender(
            RetryPolicy(
                max_attempts=control.webhook_max_attempts,
                base_s=control.webhook_retry_base_s,
                max_s=control.webhook_retry_max_s,
                timeout_s=control.webhook_timeout_s,
            ),
            control.webhook_queue_capacity,
        )
        view = LoopView(
            table=lambda: self.reconciler.state.table,
            processes=self.runtime.processes,
            signals=self.signals.series,
        )
        self.monitor = Monitor(
            registry,
            ScrapedReadings(registry, self._http, self.gateway.url, view),
            self.webhooks,
            interval_s=control.monitor_interval_s,
            retention_s=control.history_retention_s,
        )
        self._targets_path = settings.data_dir / TARGETS_FILE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferryman-control-loop", daemon=True)

    def start(self) -> None:
        restored = self.monitor.restore()
        logger.info("metric history: %d samples restored", restored)
        self.webhooks.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # a loop never started has nothing to wait for
            self._thread.join(timeout=30)
        self.webhooks.stop()
        self._load.close()
        self._http.close()
        self.runtime.close()

    def shut_down_data_plane(self) -> int:
        """Stop every replica and the gateway of this data dir; how many replicas ran."""
        stopped = self.runtime.stop_all()
        self.gateway.stop()
        return stopped

    def _traffic_source(self, settings: Settings) -> TrafficSource:
        """The gateway's traffic as rollouts judge it: from Prometheus when one is named."""
        url = settings.control.prometheus_url
        if url is None:
            return self._gateway_traffic
        logger.info("rollout analysis reads the gateway's traffic from Prometheus")
        return PrometheusTraffic(url, self._http)

    def _gateway_traffic(self) -> dict[Key, Traffic] | None:
        try:
            return traffic_by_variant(self._http.get(f"{self.gateway.url}/metrics").text)
        except httpx.HTTPError:
            return None

    def _replica_predictions(self) -> dict[Key, Classes]:
        """Top-1 class counts per variant, summed over the replicas the gateway routes to."""
        table = self.reconciler.state.table
        found: dict[Key, Classes] = {}
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                summed: Classes = {}
                for url in variant.backends:
                    try:
                        counts = class_counts(self._http.get(f"{url}/metrics").text)
                    except httpx.HTTPError:
                        continue
                    for name, count in counts.items():
                        summed[name] = summed.get(name, 0.0) + count
                found[(endpoint, variant.name)] = summed
        return found

    def _replica_traffic(self) -> dict[Key, Traffic]:
        """Each routed variant's own requests, 5xx and latency, summed over its replicas."""
        table = self.reconciler.state.table
        found: dict[Key, Traffic] = {}
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                parts = []
                for url in variant.backends:
                    try:
                        parts.append(replica_traffic(self._http.get(f"{url}/metrics").text))
                    except httpx.HTTPError:
                        continue
                found[(endpoint, variant.name)] = summed(parts)
        return found

    def _pools(self) -> dict[Key, tuple[int, int]]:
        """(ready replicas, failed starts since the last ready one) of every routed variant."""
        state = self.reconciler.state
        found: dict[Key, tuple[int, int]] = {}
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

    def _collect(self) -> None:
        """Read the replicas' payload logs, at most every ``payload_collect_interval_s``."""
        now = time.monotonic()
        if now - self._collected_at >= self._settings.control.payload_collect_interval_s:
            self._collected_at = now
            self._collector.tick(self.reconciler.state.table)

    def _run(self) -> None:
        interval_s = self._settings.control.reconcile_interval_s
        while not self._stop.is_set():
            try:
                self.gateway.ensure_running()
                self.reconciler.tick()
                self._collect()
                self.rollouts.tick()
                self.monitor.tick()
                write_targets(self._targets_path, self.reconciler.state.table)
            except Exception:  # the loop must outlive any one failed pass
                logger.exception("control loop pass failed; retrying in %.1f s", interval_s)
            self._stop.wait(interval_s)
