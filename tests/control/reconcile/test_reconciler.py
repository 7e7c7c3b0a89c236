"""The control loop over a real registry and the in-memory runtime, with a stepped clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ferryman.control.reconcile.reconciler import Load, Reconciler
from ferryman.gateway.routes import RouteTable
from ferryman.registry import Autoscaling, DeploymentSpec, Registry, VariantSpec
from ferryman.runtimes.base import Replica
from ferryman.runtimes.memory import InMemoryRuntime
from tests.support import SteppedClock as Clock


class FixedLoad:
    def __init__(self) -> None:
        self.by_slot: dict[tuple[str, str], Load] = {}

    def load(self, slot: tuple[str, str], replicas: list[Replica]) -> Load:
        return self.by_slot.get(slot, Load())


@dataclass
class World:
    registry: Registry
    runtime: InMemoryRuntime
    reconciler: Reconciler
    clock: Clock
    load: FixedLoad


@pytest.fixture
def world(registry: Registry, tmp_path: Path, onnx_bytes: Callable[..., bytes]) -> World:
    registry.register("digits", onnx_bytes(), "alice")
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
    runtime, clock, load = InMemoryRuntime(), Clock(), FixedLoad()
    reconciler = Reconciler(registry, runtime, load=load, clock=clock, route_grace_s=1.0)
    return World(registry, runtime, reconciler, clock, load)


def ticks(reconciler: Reconciler, clock: Clock, count: int, step_s: float = 0.5) -> RouteTable:
    table = reconciler.tick()
    for _ in range(count - 1):
        clock.now_s += step_s
        table = reconciler.tick()
    return table


def test_deploy_reaches_the_gateways(world: World) -> None:
    registry, reconciler, clock = world.registry, world.reconciler, world.clock
    spec = DeploymentSpec(
        endpoint="digits", variants=(VariantSpec(model="digits", version=1, replicas=2),)
    )
    registry.deployments.put(spec, "alice")
    table = ticks(reconciler, clock, 3)
    assert world.runtime.published() == table
    assert len(table.endpoints["digits"].variants[0].backends) == 2
    actions = [e.action for e in registry.list_events("digits")]
    assert actions.count("replica.started") == 2


def test_canary_weights_and_removal_drain_after_the_grace(world: World) -> None:
    registry, runtime, reconciler, clock = (
        world.registry,
        world.runtime,
        world.reconciler,
        world.clock,
    )
    both = DeploymentSpec(
        endpoint="digits",
        variants=(
            VariantSpec(model="digits", version=1, weight=90),
            VariantSpec(model="digits", version=2, weight=10),
        ),
    )
    registry.deployments.put(both, "alice")
    table = ticks(reconciler, clock, 3)
    assert [(v.name, v.weight) for v in table.endpoints["digits"].variants] == [
        ("v1", 90),
        ("v2", 10),
    ]

    promoted = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=2),))
    registry.deployments.put(promoted, "alice")
    generation = table.generation
    table = reconciler.tick()
    assert table.generation == generation + 1
    assert [v.name for v in table.endpoints["digits"].variants] == ["v2"]
    v1 = [r for r in runtime.replicas.values() if r.spec.variant == "v1"]
    assert v1, "v1 is still running during the grace: the gateway may still use it"
    clock.now_s += 1.0
    reconciler.tick()
    assert [r.spec.variant for r in runtime.replicas.values()] == ["v2"]


def test_a_crashed_replica_is_replaced_and_leaves_the_routes(world: World) -> None:
    registry, runtime, reconciler, clock = (
        world.registry,
        world.runtime,
        world.reconciler,
        world.clock,
    )
    registry.deployments.put(
        DeploymentSpec(
            endpoint="digits", variants=(VariantSpec(model="digits", version=1, replicas=2),)
        ),
        "alice",
    )
    ticks(reconciler, clock, 3)
    victim = next(iter(runtime.replicas))
    runtime.crash(victim)
    table = reconciler.tick()
    assert victim not in str(table)
    assert len(table.endpoints["digits"].variants[0].backends) == 1
    table = ticks(reconciler, clock, 8)
    assert len(table.endpoints["digits"].variants[0].backends) == 2
    failed = [e for e in registry.list_events("digits") if e.action == "replica.failed"]
    assert failed[0].object_key == victim


def test_autoscaling_follows_load_and_records_why(world: World) -> None:
    registry, reconciler, clock, load = world.registry, world.reconciler, world.clock, world.load
    scaled = DeploymentSpec(
        endpoint="digits",
        variants=(VariantSpec(model="digits", version=1),),
        autoscaling=Autoscaling(
            min_replicas=1, max_replicas=4, target_in_flight=2, scale_down_delay_s=5
        ),
    )
    registry.deployments.put(scaled, "alice")
    ticks(reconciler, clock, 2)
    load.by_slot[("digits", "v1")] = Load(in_flight=7)
    table = ticks(reconciler, clock, 3)
    assert len(table.endpoints["digits"].variants[0].backends) == 4
    load.by_slot[("digits", "v1")] = Load(in_flight=0.5)
    table = ticks(reconciler, clock, 20)
    assert len(table.endpoints["digits"].variants[0].backends) == 1
    reasons = [e.details["reason"] for e in registry.list_events("digits", limit=500)
               if e.action == "endpoint.scaled"]  # fmt: skip
    assert any("7 in flight" in reason for reason in reasons)


def test_a_standby_pool_is_started_in_full_without_load(world: World) -> None:
    """A blue-green's new pool (v2, no traffic yet) gets the replicas its standby asks."""
    bounds = Autoscaling(min_replicas=1, max_replicas=4, target_in_flight=2)
    spec = DeploymentSpec(
        endpoint="digits",
        variants=(VariantSpec(model="digits", version=1, weight=100, standby_replicas=3),
                  VariantSpec(model="digits", version=2, weight=0, standby_replicas=3)),
        autoscaling=bounds,
    )  # fmt: skip
    world.registry.deployments.put(spec, "alice")
    table = ticks(world.reconciler, world.clock, 3)
    backends = {v.name: len(v.backends) for v in table.endpoints["digits"].variants}
    assert backends == {"v1": 3, "v2": 3}


def test_undeploy_stops_everything(world: World) -> None:
    registry, runtime, reconciler, clock = (
        world.registry,
        world.runtime,
        world.reconciler,
        world.clock,
    )
    registry.deployments.put(
        DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),)),
        "alice",
    )
    ticks(reconciler, clock, 3)
    registry.deployments.remove("digits", "alice")
    table = ticks(reconciler, clock, 4)
    assert table.endpoints == {}
    assert runtime.replicas == {}


def test_the_forecast_scales_ahead_of_a_recurring_peak(world: World) -> None:
    """A 10-step season with a peak at steps 6-8; cold start 2 s: after three seasons the
    loop adds replicas before the peak's traffic arrives."""
    registry, reconciler, clock, load = world.registry, world.reconciler, world.clock, world.load
    bounds = Autoscaling(
        min_replicas=1, max_replicas=4, target_in_flight=100, target_qps=10,
        scale_down_delay_s=0.5, forecast_season_s=10, forecast_step_s=1, cold_start_s=2,
    )  # fmt: skip
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),),
                          autoscaling=bounds)  # fmt: skip
    registry.deployments.put(spec, "alice")
    ready_before_peak = []
    for step in range(40):
        season_step = step % 10
        load.by_slot[("digits", "v1")] = Load(qps=40.0 if season_step in (6, 7, 8) else 5.0)
        for _ in range(2):  # two ticks per one-second step
            table = reconciler.tick()
            clock.now_s += 0.5
        if step >= 30 and season_step == 5:  # still quiet: 5 qps wants one replica
            ready_before_peak.append(len(table.endpoints["digits"].variants[0].backends))
    assert ready_before_peak
    assert min(ready_before_peak) >= 3
    reasons = [e.details["reason"] for e in registry.list_events("digits", limit=1000)
               if e.action == "endpoint.scaled"]  # fmt: skip
    assert any("forecast" in reason for reason in reasons)


def test_every_table_carries_the_registry_and_is_published_every_tick(
    registry: Registry, onnx_bytes: Callable[..., bytes]
) -> None:
    """Issue 13: the runtime is handed the wanted table on every tick (so it can give a
    gateway that lost it the table again), stamped with the registry's identity."""
    registry.register("digits", onnx_bytes(), "alice")
    clock, runtime = Clock(), InMemoryRuntime()
    reconciler = Reconciler(
        registry, runtime, clock=clock, route_grace_s=1.0, registry_id=registry.identity()
    )
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),))
    registry.deployments.put(spec, "alice")
    table = ticks(reconciler, clock, 6)
    assert table.registry == registry.identity()
    assert runtime.publishes == 6  # one publish a tick, changed or not
    assert ticks(reconciler, clock, 3).generation == table.generation  # steady: no new one
