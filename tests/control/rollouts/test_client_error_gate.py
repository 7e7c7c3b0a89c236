"""4xx answers count in every strategy's analysis: a candidate that refuses the clients the
baseline served is rolled back at once — a canary, a blue-green bake, an A/B test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.client_errors import refused_more
from ferryman.control.rollouts.gates import (
    Analysis,
    CanaryPlan,
    Gates,
    Progress,
    Verdict,
    analyse,
    decide,
)
from ferryman.registry import DeploymentSpec, Registry, RolloutStatus, VariantSpec
from tests.control.rollouts.test_strategies import AB, BLUE_GREEN, World


@pytest.mark.parametrize(
    ("candidate", "baseline", "refused"),
    [
        (Traffic(40, client_errors=40), Traffic(400), True),  # a client the candidate refuses
        (Traffic(40, client_errors=40), Traffic(), True),  # nothing to compare with: vs none
        (Traffic(40, client_errors=3), Traffic(400, client_errors=20), False),  # within 0.05
        (Traffic(10, client_errors=10), Traffic(400), False),  # too few requests to judge
        (Traffic(30, client_errors=5), Traffic(30, client_errors=1), False),  # could be chance
        (Traffic(300, client_errors=50), Traffic(300, client_errors=10), True),  # is not
    ],
)
def test_a_rise_of_4xx_beyond_the_tolerance_and_chance_is_refused_clients(
    candidate: Traffic, baseline: Traffic, refused: bool
) -> None:
    assert (refused_more(0.05, candidate, baseline, min_requests=20) is not None) is refused


def test_one_window_of_refused_clients_rolls_back_without_waiting_for_the_threshold() -> None:
    plan = CanaryPlan(threshold=3)
    refused = Analysis(Verdict.FAIL, ("4xx rate 1.000 > baseline 0.000 + 0.05",), 40, 1.0,
                       None, breaks_clients=True)  # fmt: skip
    decision, progress = decide(plan, refused, Progress())
    assert (decision.action, decision.weight, progress.failed_checks) == ("rollback", 0, 1)
    assert decision.reason == (
        "clients refused, rolled back at once (failed check 1/3): 4xx rate 1.000 > baseline "
        "0.000 + 0.05"
    )
    slow = Analysis(Verdict.FAIL, ("p99 900 ms > 500 ms",), 40, 1.0, 900.0)
    assert decide(plan, slow, Progress())[0].action == "hold"


@pytest.mark.parametrize(("rise", "verdict"), [(0.0, "fail"), (None, "pass")])
def test_analysis_holds_the_4xx_share_to_the_gate_even_a_zero_one(
    rise: float | None, verdict: str
) -> None:
    gates = Gates(max_client_error_rise=rise, max_p99_ms=None)
    judged = analyse(gates, Traffic(100, client_errors=10), baseline=Traffic(1000))
    assert judged.verdict == verdict
    assert (judged.client_error_rate, judged.baseline_client_error_rate) == (0.1, 0.0)
    assert judged.breaks_clients is (verdict == "fail")


@pytest.fixture
def world(registry: Registry, onnx_bytes: Callable[..., bytes]) -> World:
    """Endpoint ``digits`` serving v1 on 2 replicas; v2 registered."""
    registry.register("digits", onnx_bytes(), "alice")
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
    v1 = VariantSpec(model="digits", version=1, replicas=2)
    registry.deployments.put(DeploymentSpec(endpoint="digits", variants=(v1,)), "alice")
    return World(registry)


def test_a_canary_refusing_its_clients_is_rolled_back_after_one_window(world: World) -> None:
    plan = {"steps": [10, 50, 100], "interval_s": 5, "threshold": 3, "gates": {"min_requests": 10}}
    rollout = world.start("canary", plan)
    world.controller.tick()
    world.gateway.serve("v1", 200, client_errors=4)
    world.gateway.serve("v2", 20, client_errors=20)
    world.after(5)

    done = world.get(rollout)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert "4xx rate 1.000 > baseline 0.020 + 0.05: 20 of 20 requests refused" in done.reason
    assert done.failed_checks == 1
    assert world.weights() == {"v1": 100}
    figures = world.registry.rollouts.timeline(rollout.id)[-1].details["figures"]
    assert (figures["client_error_rate"], figures["baseline_client_error_rate"]) == (1.0, 0.02)


def test_a_canary_with_the_baselines_share_of_4xx_goes_on(world: World) -> None:
    plan = {"steps": [10, 100], "interval_s": 5, "threshold": 1, "gates": {"min_requests": 10}}
    rollout = world.start("canary", plan)
    world.controller.tick()
    for _ in range(2):
        world.gateway.serve("v1", 200, client_errors=10)
        world.gateway.serve("v2", 100, client_errors=6)
        world.after(5)
    assert world.get(rollout).status is RolloutStatus.PROMOTED


def test_a_blue_green_refusing_its_clients_switches_back_in_the_first_bake_window(
    world: World,
) -> None:
    world.gateway.serve("v1", 500, client_errors=5)  # before the switch: its record
    rollout = world.start("blue_green", {**BLUE_GREEN, "threshold": 2})
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)  # switched; the bake begins
    world.gateway.serve("v2", 30, client_errors=30)
    world.after(10)

    done = world.get(rollout)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert "4xx rate 1.000 > baseline 0.010 + 0.05" in done.reason
    assert world.weights() == {"v1": 100}


def test_an_ab_test_whose_candidate_refuses_its_clients_ends_rolled_back(world: World) -> None:
    rollout = world.start("ab", AB)
    world.controller.tick()
    world.ready("v2", 2)
    world.after(1)
    world.after(0.5)
    world.gateway.serve("v1", 50, client_errors=1)
    world.gateway.serve("v2", 50, client_errors=50)
    world.after(60)

    done = world.get(rollout)
    assert done.status is RolloutStatus.ROLLED_BACK
    assert done.reason.startswith("ended, rolled back: 4xx rate 1.000 > baseline 0.020 + 0.05")
    assert world.weights() == {"v1": 100}
