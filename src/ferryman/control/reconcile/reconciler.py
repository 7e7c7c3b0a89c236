"""The control loop: observe → decide → act, once per tick.

Each tick reads the desired state (deployments, from the registry), observes the replicas
(through the runtime) and their load (through a load source), asks the pure functions in
``plan.py`` and ``autoscale.py`` what to do, and does it: starts replicas, publishes the
route table of ready replicas to the gateways through the runtime, and stops replicas only
after the table without them has had ``route_grace_s`` to reach the gateway, so no request
is sent to a replica that is going away. Every start, stop, failure and scaling decision
is an event.

The runtime's ``publish`` runs every tick, so a table a gateway lost (a deleted or garbled
file, a gateway that holds another generation) is handed to it again; each table carries
the registry's identity, so a gateway's table always says whose control plane wrote it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ferryman.control.reconcile.autoscale import (
    Observation,
    ScalerState,
    ScalingPolicy,
    desired_replicas,
)
from ferryman.control.reconcile.forecast import RateTrack, SeasonalModel
from ferryman.control.reconcile.plan import Backoff, RestartPolicy, plan_replicas, route_table
from ferryman.gateway.routes import RouteTable
from ferryman.registry import Autoscaling, DeploymentRecord, Registry
from ferryman.runtimes.base import Replica, ReplicaSpec, ReplicaState, Runtime, replica_specs
from ferryman.types import Clock, Slot

logger = logging.getLogger(__name__)

ACTOR = "reconciler"


@dataclass(frozen=True)
class Load:
    in_flight: float = 0.0
    qps: float = 0.0
    held: int = 0


class LoadSource(Protocol):
    def load(self, slot: Slot, replicas: list[Replica]) -> Load:
        """The load on one (endpoint, variant) right now."""
        ...


class NoLoad:
    """A load source that sees nothing: autoscaled endpoints stay at their floor."""

    def load(self, slot: Slot, replicas: list[Replica]) -> Load:
        return Load()


@dataclass
class ReconcilerState:
    """What the loop carries from one tick to the next (lost on restart, by design)."""

    backoff: dict[Slot, Backoff] = field(default_factory=dict)
    scalers: dict[Slot, ScalerState] = field(default_factory=dict)
    rates: dict[Slot, RateTrack] = field(default_factory=dict)
    stopping: dict[Replica, float] = field(default_factory=dict)
    table: RouteTable | None = None
    observed: list[Replica] = field(default_factory=list)
    """The replicas of the last observation that are not leaving (for the monitor)."""


class Reconciler:
    def __init__(
        self,
        registry: Registry,
        runtime: Runtime,
        *,
        load: LoadSource | None = None,
        clock: Clock = time.monotonic,
        route_grace_s: float = 1.0,
        restart: RestartPolicy | None = None,
        registry_id: str = "",
    ) -> None:
        """``registry_id`` is stamped on every table."""
        self._registry = registry
        self._runtime = runtime
        self._load = load or NoLoad()
        self._clock = clock
        self._grace_s = route_grace_s
        self._restart = restart or RestartPolicy()
        self._registry_id = registry_id
        self.state = ReconcilerState(table=runtime.published())

    def tick(self) -> RouteTable:
        """One pass of observe → decide → act; returns the route table in force."""
        now = self._clock()
        deployments = self._registry.deployments.list()
        leaving_ids = {replica.id for replica in self.state.stopping}
        observed = [r for r in self._runtime.observe() if r.id not in leaving_ids]
        self.state.observed = observed
        desired = self._desired(deployments, observed, now)
        plan, self.state.backoff = plan_replicas(
            desired, observed, self.state.backoff, now, self._restart
        )
        for replica in observed:
            if replica.state is ReplicaState.FAILED:
                self._event("replica.failed", replica, {"reason": replica.reason})
        leaving = set(plan.stop)
        ready: dict[Slot, list[str]] = {}
        for replica in observed:
            if replica.state is ReplicaState.READY and replica.id not in leaving:
                ready.setdefault(replica.spec.slot, []).append(replica.url)
        table = self._publish(deployments, ready)
        for replica in observed:
            if replica.id in leaving:
                self.state.stopping.setdefault(replica, now)
        self._stop_due(now)
        for spec in plan.start:
            started = self._runtime.start(spec)
            self._event("replica.started", started, {"url": started.url})
        return table

    def _desired(
        self, deployments: list[DeploymentRecord], observed: list[Replica], now: float
    ) -> dict[Slot, tuple[ReplicaSpec, int]]:
        desired = {}
        for record in deployments:
            autoscaling = record.spec.autoscaling
            for variant, spec in zip(record.spec.variants, replica_specs(record.spec), strict=True):
                count = variant.replicas
                if autoscaling is not None:
                    standby = variant.standby_replicas or 0
                    count = self._autoscale(spec, autoscaling, observed, now, standby)
                desired[spec.slot] = (spec, count)
        return desired

    def _autoscale(
        self,
        spec: ReplicaSpec,
        autoscaling: Autoscaling,
        observed: list[Replica],
        now: float,
        standby: int,
    ) -> int:
        policy = ScalingPolicy(
            min_replicas=autoscaling.min_replicas,
            max_replicas=autoscaling.max_replicas,
            target_in_flight=autoscaling.target_in_flight,
            target_qps=autoscaling.target_qps,
            scale_down_window_s=autoscaling.scale_down_delay_s,
            idle_to_zero_s=autoscaling.idle_to_zero_s,
        )
        mine = [
            r for r in observed if r.spec.slot == spec.slot and r.state is not ReplicaState.FAILED
        ]
        load = self._load.load(spec.slot, mine)
        forecast = self._forecast(spec.slot, autoscaling, now, load.qps)
        observation = Observation(
            now, len(mine), load.in_flight, load.qps, load.held, forecast, standby
        )
        state = self.state.scalers.get(spec.slot, ScalerState())
        decision, self.state.scalers[spec.slot] = desired_replicas(policy, observation, state)
        if decision.replicas != len(mine):
            subject = ("endpoint", f"{spec.endpoint}/{spec.variant}", spec.model)
            details = {"replicas": decision.replicas, "reason": decision.reason}
            self._registry.record_event(ACTOR, "endpoint.scaled", subject, details)
        return decision.replicas

    def _forecast(
        self, slot: Slot, autoscaling: Autoscaling, now: float, qps: float
    ) -> float | None:
        """Fold the rate into the slot's seasonal model; the rate one cold start ahead."""
        season_s = autoscaling.forecast_season_s
        if season_s is None or autoscaling.target_qps is None:
            return None
        step_s = autoscaling.forecast_step_s
        track = self.state.rates.get(slot) or RateTrack(
            SeasonalModel(season_length=max(2, round(season_s / step_s))), step_s
        )
        self.state.rates[slot] = track = track.add(now, qps)
        return track.ahead(autoscaling.cold_start_s)

    def _publish(
        self, deployments: list[DeploymentRecord], ready: Mapping[Slot, list[str]]
    ) -> RouteTable:
        previous = self.state.table
        generation = previous.generation if previous else 0
        tokens = self._registry.tokens.inference_digests()
        table = route_table([d.spec for d in deployments], ready, generation, tokens)
        table = table.model_copy(update={"registry": self._registry_id})
        if previous is not None and table == previous:
            table = previous
        else:
            table = table.model_copy(update={"generation": generation + 1})
            self.state.table = table
        self._runtime.publish(table)  # every tick: a gateway that lost its table gets it again
        return table

    def _stop_due(self, now: float) -> None:
        for replica, since in list(self.state.stopping.items()):
            if now - since >= self._grace_s:
                self._runtime.stop(replica.id)
                del self.state.stopping[replica]
                self._event("replica.stopped", replica, {})

    def _event(self, action: str, replica: Replica, details: dict[str, object]) -> None:
        logger.info("%s: %s %s", action, replica.id, details)
        subject = ("replica", replica.id, replica.spec.model)
        slot = {"endpoint": replica.spec.endpoint, "variant": replica.spec.variant}
        self._registry.record_event(ACTOR, action, subject, {**slot, **details})
