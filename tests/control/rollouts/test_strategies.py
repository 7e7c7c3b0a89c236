"""Blue-green, A/B tests and shadows driven by the controller over a real registry, with a
stepped monotonic clock and scripted gateway totals, replica pools and feedback: no sleep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources
from ferryman.control.rollouts.steering import promote, start_rollout
from ferryman.errors import Conflict
from ferryman.registry import (
    Autoscaling,
    DeploymentSpec,
    Registry,
    RolloutRecord,
    RolloutStatus,
    VariantSpec,
)
from ferryman.types import Slot
from tests.control.scripted import Scripted
from tests.support import SteppedClock as Clock

GATES = {"min_requests": 10}
BLUE_GREEN = {"warmup_timeout_s": 60, "bake_s": 30, "interval_s": 10, "gates": GATES}


class World:
    """What the controller sees, scripted: gateway totals, replica pools, feedback, time."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.gateway = Scripted()
        self.clock = Clock()
        self.pools: dict[Slot, tuple[int, int]] = {}
        self.labels: dict[str, tuple[float, float]] = {}
        self.since: list[datetime | None] = []
        sources = Sources(self.gateway, pools=lambda: dict(self.pools), accuracy=self._accuracy)
        self.controller = RolloutController(registry, sources, self.clock)

    def _accuracy(
        self, rollout: RolloutRecord, since: datetime | None
    ) -> dict[str, tuple[float, float]]:
        self.since.append(since)
        return dict(self.labels)

    def ready(self, variant: str, replicas: int, failures: int = 0) -> None:
        self.pools[("digits", variant)] = (replicas, failures)

    def after(self, seconds: float, **traffic: tuple[int, int]) -> None:
        """Serve ``traffic`` (variant=(requests, errors)), let time pass, tick."""
        for variant, (requests, errors) in traffic.items():
            self.gateway.serve(variant, requests, errors)
        self.clock.now_s += seconds
        self.controller.tick()

    def start(self, strategy: str, plan: dict[str, Any]) -> RolloutRecord:
        return start_rollout(self.registry, "digits", 2, strategy=strategy, plan=plan, actor="a")

    def get(self, rollout: RolloutRecord) -> RolloutRecord:
        return self.registry.rollouts.get(rollout.id)

    def spec(self) -> DeploymentSpec:
        return self.registry.deployments.get("digits").spec

    def weights(self) -> dict[str, int]:
        return {v.name: v.weight for v in self.spec().variants}

    def story(self, rollout: RolloutRecord) -> list[str]:
        return [
            e.action.removeprefix("rollout.") for e in self.registry.rollouts.timeline(rollout.id)
        ]


@pytest.fixture
def world(registry: Registry, onnx_bytes: Callable[..., bytes]) -> World:
    """Endpoint ``digits`` serving v1 on 2 replicas; v2 registered."""
    registry.register("digits", onnx_bytes(), "alice")
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
    v1 = VariantSpec(model="digits", version=1, replicas=2)
    registry.deployments.put(DeploymentSpec(endpoint="digits", variants=(v1,)), "alice")
    registry.set_alias("digits", "production", 1, "alice")
    return World(registry)


# -- blue-green ------------------------------------------------------------------------------


def test_blue_green_warms_a_full_pool_switches_at_once_and_promotes_after_the_bake(
    world: World,
) -> None:
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    assert world.weights() == {"v1": 100, "v2": 0}
    assert world.spec().variant("v2").replicas == 2  # as many as the baseline
    world.ready("v2", 1)
    world.after(1)
    assert world.weights() == {"v1": 100, "v2": 0}  # never to a pool that is not ready
    world.ready("v2", 2)
    world.after(1)
    switched = world.get(rollout)
    assert world.weights() == {"v1": 0, "v2": 100}  # the old pool stays for a switch back
    assert (switched.state["phase"], switched.weight) == ("baking", 100)

    world.after(0.5)  # the bake begins
    for _ in range(3):
        world.after(10, v2=(50, 0))
        if world.get(rollout).status.is_final:
            break
    done = world.get(rollout)
    assert done.status is RolloutStatus.PROMOTED
    assert world.weights() == {"v2": 100}
    assert world.registry.get_version("digits", "production").version == 2
    assert world.story(rollout) == [
        "created", "warming", "switched", "held", "held", "promoted",
    ]  # fmt: skip
    last = world.registry.rollouts.timeline(rollout.id)[-1].details
    assert last["bake"]["requests"] == 150
    assert last["figures"]["requests"] == 50
    switch = world.registry.rollouts.timeline(rollout.id)[2].details
    assert switch["pool"] == {"wanted": 2, "ready": 2, "failures": 0}


def test_blue_green_on_an_autoscaled_endpoint_holds_both_pools_at_the_old_size(
    world: World,
) -> None:
    autoscaled = world.spec().model_copy(
        update={"autoscaling": Autoscaling(min_replicas=1, max_replicas=8)}
    )
    world.registry.deployments.put(autoscaled, "alice")
    world.ready("v1", 3)  # the autoscaler has v1 at 3 replicas now
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    assert world.get(rollout).state["pool_replicas"] == 3
    standby = {v.name: v.standby_replicas for v in world.spec().variants}
    assert standby == {"v1": 3, "v2": 3}  # the reconciler keeps both at 3 whatever the load
    world.ready("v2", 1)
    world.after(1)
    assert world.weights() == {"v1": 100, "v2": 0}  # 1 of 3 is not a full pool
    world.ready("v2", 3)
    world.after(1)
    assert world.weights() == {"v1": 0, "v2": 100}
    assert {v.name: v.standby_replicas for v in world.spec().variants} == {"v1": 3, "v2": 3}
    world.after(0.5)
    for _ in range(3):
        world.after(10, v2=(50, 0))
    assert world.get(rollout).status is RolloutStatus.PROMOTED
    [kept] = world.spec().variants
    assert (kept.name, kept.standby_replicas) == ("v2", None)  # the autoscaler alone again


def test_a_failed_gate_in_the_bake_switches_back_at_once(world: World) -> None:
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    world.after(10, v2=(50, 20))
    done = world.get(rollout)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert done.reason.startswith("switched back: success rate 0.600")
    assert world.weights() == {"v1": 100}
    assert world.registry.get_version("digits", "production").version == 1


def test_a_pool_that_fails_to_load_is_rolled_back_having_served_nothing(world: World) -> None:
    """F2: a replica of v2 failed to load; v2 never got a share of traffic."""
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    world.ready("v2", 0, failures=1)
    world.after(1)
    done = world.get(rollout)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert "failed to load" in done.reason
    assert world.weights() == {"v1": 100}
    shares = [e.details["weights"].get("v2", 0) for e in world.registry.list_events("digits", 100)
              if e.action == "deployment.updated"]  # fmt: skip
    assert max(shares) == 0


def test_a_pool_not_ready_within_the_warm_up_is_rolled_back(world: World) -> None:
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    world.ready("v2", 1)
    world.after(30)
    world.after(29)
    assert world.get(rollout).status is RolloutStatus.PROGRESSING
    world.after(2)
    assert "not ready after 60 s (1/2 replicas)" in world.get(rollout).reason
    assert world.weights() == {"v1": 100}


def test_a_bake_without_data_never_promotes_and_goes_on_when_data_returns(world: World) -> None:
    """Z5: metrics down through the bake → it holds at 100% with the old pool kept."""
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    world.gateway.is_down = True
    for _ in range(6):
        world.after(10)
    held = world.get(rollout)
    assert held.status is RolloutStatus.PROGRESSING
    assert "inconclusive over the bake" in held.reason
    assert world.weights() == {"v1": 0, "v2": 100}
    world.gateway.is_down = False
    world.after(10, v2=(50, 0))
    world.after(10, v2=(50, 0))
    assert world.get(rollout).status is RolloutStatus.PROMOTED


def test_promoting_a_pool_that_is_still_warming_is_refused(world: World) -> None:
    rollout = world.start("blue_green", BLUE_GREEN)
    world.controller.tick()
    with pytest.raises(Conflict, match="not ready yet"):
        promote(world.registry, rollout.id, "bob")


# -- A/B test --------------------------------------------------------------------------------


AB = {"split": 50, "sticky_header": "x-region", "interval_s": 60, "max_duration_s": 600,
      "min_samples": 100}  # fmt: skip


def test_an_ab_test_splits_by_a_sticky_header_and_reports_the_loser(world: World) -> None:
    """The known answer through the controller: v1 0.90 against v2 0.80, 2,000 each."""
    world.gateway.serve("v1", 5000, 10)  # before the test: not counted
    rollout = world.start("ab", AB)
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    split = world.get(rollout)
    assert world.weights() == {"v1": 50, "v2": 50}
    assert world.spec().sticky_header == "x-region"
    assert split.state["phase"] == "running"
    world.after(0.5)
    world.after(60, v1=(2000, 200), v2=(2000, 400))
    done = world.get(rollout)
    assert done.status is RolloutStatus.COMPLETED
    result = done.state["result"]
    assert result["winner"] == "v1"
    assert result["p_value"] < 0.001
    assert (result["baseline"]["samples"], result["candidate"]["samples"]) == (2000, 2000)
    assert result["required_per_arm"] > 100
    assert world.weights() == {"v1": 100}
    assert world.spec().sticky_header is None  # as it was before the test
    final = world.registry.rollouts.timeline(rollout.id)[-1]
    assert final.action == "rollout.completed"
    assert final.details["test"]["statistic"] == pytest.approx(-8.856, abs=1e-3)


def test_an_ab_test_on_accuracy_promotes_a_winner_when_asked(world: World) -> None:
    rollout = world.start("ab", {**AB, "metric": "accuracy", "promote_winner": True})
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    world.labels = {"v1": (1000, 850), "v2": (1000, 920)}
    world.after(60)
    done = world.get(rollout)
    assert done.status is RolloutStatus.PROMOTED
    assert world.registry.get_version("digits", "production").version == 2
    assert world.weights() == {"v2": 100}
    assert world.since[-1] is not None  # labels counted from the split on


def test_equal_arms_end_without_a_winner_at_the_maximum_duration(world: World) -> None:
    rollout = world.start("ab", {**AB, "promote_winner": True})
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    for _ in range(9):
        world.after(60, v1=(300, 30), v2=(300, 30))
        assert world.get(rollout).status is RolloutStatus.PROGRESSING
    world.after(60, v1=(300, 30), v2=(300, 30))
    done = world.get(rollout)
    assert done.status is RolloutStatus.COMPLETED
    assert done.state["result"]["winner"] is None
    assert done.reason.startswith("no winner after 600 s")
    assert world.weights() == {"v1": 100}


def test_an_ab_test_keeps_its_samples_across_a_restart(world: World) -> None:
    rollout = world.start("ab", {**AB, "min_samples": 1500})
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    world.after(60, v1=(1000, 100), v2=(1000, 200))  # too few samples to test yet
    assert "1000 samples in the smaller arm < 1500" in world.get(rollout).reason
    restarted = RolloutController(
        world.registry, Sources(world.gateway, pools=lambda: dict(world.pools)), world.clock
    )
    world.controller = restarted
    world.after(1)
    world.after(60, v1=(1000, 100), v2=(1000, 200))
    result = world.get(rollout).state["result"]
    assert (result["baseline"]["samples"], result["candidate"]["samples"]) == (2000, 2000)


# -- shadow ----------------------------------------------------------------------------------


SHADOW = {"duration_s": 60, "interval_s": 20, "min_compared": 50}


def test_a_shadow_mirrors_never_serves_and_ends_with_its_report(world: World) -> None:
    rollout = world.start("shadow", SHADOW)
    world.controller.tick()
    assert world.spec().shadow is None  # not mirrored to a pool that is not ready
    world.ready("v2", 2)
    world.after(1)
    assert world.spec().shadow == "v2"
    assert world.weights() == {"v1": 100, "v2": 0}
    world.after(0.5)
    for _ in range(3):
        world.gateway.mirror("v2", "equal", 90)
        world.gateway.mirror("v2", "different", 10)
        world.after(20, v1=(100, 0))
    done = world.get(rollout)
    assert done.status is RolloutStatus.COMPLETED
    report = done.state["report"]
    assert (report["compared"], report["agreement"]) == (300, 0.9)
    assert world.spec().shadow is None
    assert world.weights() == {"v1": 100}
    assert world.story(rollout) == ["created", "warming", "mirroring", "held", "held", "completed"]


def test_a_shadow_that_agrees_goes_on_into_its_canary(world: World) -> None:
    plan = {**SHADOW, "min_agreement": 0.95,
            "canary": {"steps": [20, 100], "interval_s": 5, "gates": GATES}}  # fmt: skip
    rollout = world.start("shadow", plan)
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    for _ in range(3):
        world.gateway.mirror("v2", "close", 99)
        world.gateway.mirror("v2", "status_differs", 1)
        world.after(20)
    canary = world.get(rollout)
    assert canary.state["phase"] == "canary"
    assert world.weights() == {"v1": 80, "v2": 20}
    assert world.spec().shadow is None
    world.after(0.5)
    world.after(5, v2=(50, 0))
    world.after(5, v2=(50, 0))
    assert world.get(rollout).status is RolloutStatus.PROMOTED
    assert world.weights() == {"v2": 100}


def test_a_shadow_of_an_endpoint_that_already_mirrors_is_refused(world: World) -> None:
    spec = world.spec()
    v2 = VariantSpec(model="digits", version=2, weight=0)
    world.registry.deployments.put(
        spec.model_copy(update={"variants": (*spec.variants, v2), "shadow": "v2"}), "a"
    )
    with pytest.raises(Conflict, match="already mirrors to v2"):
        world.start("shadow", SHADOW)
