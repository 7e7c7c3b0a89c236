"""The rollout controller over a real registry, a stepped clock and scripted traffic."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.control.rollouts.observer import Sources
from ferryman.control.rollouts.steering import start_rollout
from ferryman.errors import Conflict, VersionNotFound
from ferryman.registry import DeploymentSpec, Registry, RolloutRecord, RolloutStatus, VariantSpec
from ferryman.types import Slot
from tests.control.scripted import Scripted
from tests.support import SteppedClock as Clock

PLAN = CanaryPlan(steps=(10, 50, 100), interval_s=5, threshold=2, gates=Gates(min_requests=10))


@pytest.fixture
def deployed(registry: Registry, onnx_bytes: Callable[..., bytes]) -> Registry:
    registry.register("digits", onnx_bytes(), "alice")
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
    registry.deployments.put(
        DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),)),
        "alice",
    )
    return registry


def start_canary(registry: Registry, plan: CanaryPlan) -> RolloutRecord:
    return start_rollout(registry, "digits", 2, strategy="canary", plan=plan, actor="alice")


def run_windows(
    controller: RolloutController, clock: Clock, traffic: Scripted, windows: int,
    candidate_errors: int = 0, candidate_requests: int = 50,
) -> None:  # fmt: skip
    for _ in range(windows):
        traffic.serve("v1", 100)
        traffic.serve("v2", candidate_requests, candidate_errors)
        clock.now_s += PLAN.interval_s
        controller.tick()


def weights(registry: Registry) -> dict[str, int]:
    return {v.name: v.weight for v in registry.deployments.get("digits").spec.variants}


def test_a_healthy_canary_is_promoted_step_by_step(deployed: Registry) -> None:
    clock, traffic = Clock(), Scripted()
    controller = RolloutController(deployed, Sources(traffic), clock)
    rollout = start_canary(deployed, PLAN)
    controller.tick()
    assert weights(deployed) == {"v1": 90, "v2": 10}
    run_windows(controller, clock, traffic, 1)
    assert weights(deployed) == {"v1": 50, "v2": 50}
    run_windows(controller, clock, traffic, 1)
    assert weights(deployed) == {"v1": 0, "v2": 100}
    run_windows(controller, clock, traffic, 1)

    assert weights(deployed) == {"v2": 100}
    done = deployed.rollouts.get(rollout.id)
    assert done.status is RolloutStatus.PROMOTED
    assert deployed.get_version("digits", "production").version == 2
    story = [
        e.action for e in deployed.list_events("digits", limit=100) if e.object_type == "rollout"
    ]
    assert story == [
        "rollout.created",
        "rollout.step",
        "rollout.step",
        "rollout.step",
        "rollout.promoted",
    ]


def test_a_failing_canary_rolls_back_after_threshold_checks(deployed: Registry) -> None:
    clock, traffic = Clock(), Scripted()
    controller = RolloutController(deployed, Sources(traffic), clock)
    rollout = start_canary(deployed, PLAN)
    controller.tick()
    run_windows(controller, clock, traffic, 2, candidate_errors=15)

    done = deployed.rollouts.get(rollout.id)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert "success rate 0.700 < 0.99" in done.reason
    assert weights(deployed) == {"v1": 100}
    with pytest.raises(VersionNotFound, match="alias 'production'"):
        deployed.get_version("digits", "production")  # aliases stay where they were


def test_the_failed_checks_that_rolled_back_are_all_counted(deployed: Registry) -> None:
    """The rollout's count says "3 of 3" when its reason says "3 failed checks (threshold 3)"."""
    clock, traffic = Clock(), Scripted()
    controller = RolloutController(deployed, Sources(traffic), clock)
    rollout = start_canary(deployed, PLAN.model_copy(update={"threshold": 3}))
    controller.tick()
    run_windows(controller, clock, traffic, 3, candidate_errors=15)

    done = deployed.rollouts.get(rollout.id)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert done.reason.startswith("3 failed checks (threshold 3)")
    assert done.failed_checks == 3
    assert deployed.rollouts.timeline(rollout.id)[-1].details["failed_checks"] == 3


def test_no_data_holds_and_never_promotes(deployed: Registry) -> None:
    """RELIABILITY Z5: metrics down, or too little traffic → hold; resume when data returns."""
    clock, traffic = Clock(), Scripted()
    controller = RolloutController(deployed, Sources(traffic), clock)
    rollout = start_canary(deployed, PLAN)
    controller.tick()
    traffic.is_down = True
    run_windows(controller, clock, traffic, 4)
    run_windows(controller, clock, traffic, 1)
    traffic.is_down = False
    run_windows(controller, clock, traffic, 3, candidate_requests=2)
    held = deployed.rollouts.get(rollout.id)
    assert held.status is RolloutStatus.PROGRESSING
    assert held.weight == 10
    assert "inconclusive" in held.reason
    run_windows(controller, clock, traffic, 4)
    assert deployed.rollouts.get(rollout.id).status is RolloutStatus.PROMOTED


def test_a_restarted_controller_judges_a_fresh_window(deployed: Registry) -> None:
    """F5/F9: after a restart the window starts again; no promotion without a full window."""
    clock, traffic = Clock(), Scripted()
    first = RolloutController(deployed, Sources(traffic), clock)
    rollout = start_canary(deployed, PLAN)
    first.tick()
    clock.now_s += PLAN.interval_s - 1
    traffic.serve("v2", 50)
    second = RolloutController(deployed, Sources(traffic), clock)  # the control plane restarted
    second.tick()
    clock.now_s += 2  # the first window would be over; the new one is not
    second.tick()
    assert deployed.rollouts.get(rollout.id).weight == 10
    run_windows(second, clock, traffic, 1)
    assert deployed.rollouts.get(rollout.id).weight == 50


def test_one_rollout_per_endpoint_and_pause(deployed: Registry) -> None:
    clock, traffic = Clock(), Scripted()
    controller = RolloutController(deployed, Sources(traffic), clock)
    rollout = start_canary(deployed, PLAN)
    with pytest.raises(Conflict, match="already has rollout"):
        start_canary(deployed, PLAN)
    controller.tick()
    deployed.rollouts.transition(rollout.id, "alice", "paused", status=RolloutStatus.PAUSED)
    run_windows(controller, clock, traffic, 3)
    assert deployed.rollouts.get(rollout.id).weight == 10
    deployed.rollouts.transition(rollout.id, "alice", "resumed", status=RolloutStatus.PROGRESSING)
    controller.tick()
    run_windows(controller, clock, traffic, 1)
    assert deployed.rollouts.get(rollout.id).weight == 50


def test_a_policy_rolls_out_each_new_version_once(
    deployed: Registry, onnx_bytes: Callable[..., bytes]
) -> None:
    clock, traffic = Clock(), Scripted()
    controller = RolloutController(deployed, Sources(traffic), clock)
    deployed.policies.put("digits", "digits", "registered", PLAN.model_dump(mode="json"), "alice")
    controller.tick()
    assert deployed.rollouts.list() == []  # v2 was registered before the policy: not a trigger

    deployed.register("digits", onnx_bytes(seed_value=3.0), "alice")  # v3
    controller.tick()
    controller.tick()  # a second pass must not start it twice
    rollouts = deployed.rollouts.list()
    assert [(r.baseline.version, r.candidate.version) for r in rollouts] == [(1, 3)]

    deployed.register("digits", onnx_bytes(seed_value=4.0), "alice")  # v4 waits its turn
    controller.tick()
    assert len(deployed.rollouts.list()) == 1
    run_windows(controller, clock, traffic, 3, candidate_requests=0)  # v3 holds: no traffic
    traffic.serve("v3", 0)
    for _ in range(3):
        traffic.serve("v1", 100)
        traffic.serve("v3", 50)
        clock.now_s += PLAN.interval_s
        controller.tick()
    assert deployed.rollouts.list()[0].status is RolloutStatus.PROMOTED
    controller.tick()
    later = deployed.rollouts.list()
    assert [(r.baseline.version, r.candidate.version) for r in later] == [(1, 3), (3, 4)]


def test_a_policy_on_an_alias_and_a_skip_when_not_deployed(
    registry: Registry, onnx_bytes: Callable[..., bytes]
) -> None:
    controller = RolloutController(registry, Sources(Scripted()), Clock())
    registry.register("fraud", onnx_bytes(), "alice")
    registry.policies.put("fraud", "fraud", "alias:candidate", PLAN.model_dump(mode="json"), "a")
    registry.set_alias("fraud", "candidate", 1, "alice")
    controller.tick()
    skipped = [e for e in registry.list_events("fraud") if e.action == "policy.skipped"]
    assert skipped[0].details["reason"] == "endpoint 'fraud' is not deployed"
    controller.tick()
    assert len([e for e in registry.list_events("fraud") if e.action == "policy.skipped"]) == 1


def test_a_canary_whose_predictions_drift_is_held(deployed: Registry) -> None:
    clock, traffic = Clock(), Scripted()
    classes: dict[Slot, dict[str, float]] = {("digits", "v1"): {}, ("digits", "v2"): {}}

    def predictions() -> dict[Slot, dict[str, float]]:
        return {key: dict(counts) for key, counts in classes.items()}

    controller = RolloutController(deployed, Sources(traffic, predictions=predictions), clock)
    plan = PLAN.model_copy(update={"gates": Gates(min_requests=10, max_prediction_drift=0.2,
                                                  min_predictions=20)})  # fmt: skip
    rollout = start_canary(deployed, plan)
    controller.tick()
    for _ in range(4):
        classes[("digits", "v1")]["0"] = classes[("digits", "v1")].get("0", 0) + 100
        classes[("digits", "v2")]["3"] = classes[("digits", "v2")].get("3", 0) + 50
        run_windows(controller, clock, traffic, 1)
    held = deployed.rollouts.get(rollout.id)
    assert held.status is RolloutStatus.PROGRESSING
    assert held.weight == 10
    assert held.reason.startswith("inconclusive: prediction drift 1.00 > 0.2")
    assert held.failed_checks == 0
