"""The whole control loop on its seams alone: the in-memory runtime and metrics source.

No process is started and no socket opened for the fleet: registration → policy → canary
steps → promotion runs through the real registry (SQLite file), the real reconciler,
rollout controller and monitor, with replicas and their counters pretended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from ferryman.config import load_settings
from ferryman.control.loop import ControlLoop
from ferryman.control.metrics.source import FleetMetrics, InMemoryMetrics
from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.registry import DeploymentSpec, Registry, RolloutStatus, VariantSpec
from ferryman.runtimes.memory import InMemoryRuntime
from ferryman.types import Slot
from tests.support import SteppedClock as Clock

PLAN = CanaryPlan(steps=(10, 50, 100), interval_s=5, threshold=2, gates=Gates(min_requests=10))


class Gateway:
    """Gateway counters that grow by each variant's weight in the route table in force."""

    def __init__(self, loop: Callable[[], ControlLoop], clock: Clock) -> None:
        self._loop, self._clock = loop, clock
        self.totals: dict[Slot, Traffic] = {}

    def __call__(self) -> FleetMetrics:
        table = self._loop().reconciler.state.table
        for endpoint, route in table.endpoints.items() if table else ():
            for variant in route.variants:
                if variant.backends and variant.weight:
                    self._serve((endpoint, variant.name), variant.weight)
        return FleetMetrics(self._clock(), dict(self.totals))

    def _serve(self, key: Slot, requests: float) -> None:
        before = self.totals.get(key, Traffic())
        count = before.requests + requests
        buckets = {bound: count for bound in (0.01, 0.1, math.inf)}  # every answer in 10 ms
        self.totals[key] = Traffic(count, before.errors, buckets)


def test_a_registered_version_is_canaried_to_production_with_no_process(
    registry: Registry, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    registry.register("digits", onnx_bytes(), "alice")
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),))
    registry.deployments.put(spec, "alice")
    registry.policies.put("digits", "digits", "registered", PLAN.model_dump(mode="json"), "alice")
    clock, runtime = Clock(), InMemoryRuntime()
    loop: ControlLoop | None = None
    gateway = Gateway(lambda: loop, clock)  # type: ignore[arg-type, return-value]
    metrics = InMemoryMetrics(script=gateway)
    (tmp_path / "data").mkdir()
    loop = ControlLoop(load_settings(data_dir=tmp_path / "data"), registry, runtime, metrics, clock)
    try:
        loop.tick()
        loop.tick()
        table = loop.reconciler.state.table
        assert table is not None
        assert [v.name for v in table.endpoints["digits"].variants] == ["v1"]
        registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
        weights_seen = []
        for _ in range(40):
            clock.now_s += 1.0
            loop.tick()
            table = loop.reconciler.state.table
            assert table is not None
            weights_seen.append({v.name: v.weight for v in table.endpoints["digits"].variants})
            rollouts = registry.rollouts.list()
            if rollouts and rollouts[0].status is RolloutStatus.PROMOTED:
                break
        (rollout,) = registry.rollouts.list()
        assert rollout.status is RolloutStatus.PROMOTED, rollout
        assert {"v1": 90, "v2": 10} in weights_seen
        assert {"v1": 50, "v2": 50} in weights_seen
        table = loop.reconciler.state.table
        assert table is not None
        final = table.endpoints["digits"].variants
        assert [(v.name, v.weight) for v in final] == [("v2", 100)]
        assert registry.get_version("digits", "production").version == 2
        for _ in range(3):  # the route grace passes, then v1's replica is drained and stopped
            clock.now_s += 1.0
            loop.tick()
        assert [r.spec.variant for r in runtime.replicas.values()] == ["v2"]
        assert len(runtime.stopped) == 1
        assert metrics.reads == 2 + len(weights_seen) + 3  # the fleet is read once per tick
    finally:
        loop.stop()
