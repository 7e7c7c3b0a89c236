"""Signature compatibility as a gate: rollouts (by hand and by policy) and the production
alias refuse a version whose inputs the serving version's clients could not send."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources
from ferryman.control.rollouts.steering import start_rollout
from ferryman.errors import Conflict
from ferryman.registry import DeploymentSpec, Registry, VariantSpec, VersionMetadata
from tests.control.scripted import Scripted
from tests.support import SteppedClock as Clock

REFUSAL = (
    "digits v2 takes 'features' FP32 [-1,4]; the serving version v1 takes 'x' FP32 [-1,4]: "
    "input 'x' is gone; input 'features' is new and required, so clients sending 'x' would "
    "get 400"
)


@pytest.fixture
def breaking(registry: Registry, onnx_bytes: Callable[..., bytes]) -> Registry:
    """digits v1 (input x) serves and is production; v2 takes 'features'; v3 is like v1."""
    registry.register("digits", onnx_bytes(), "alice")
    registry.register("digits", onnx_bytes(input_name="features"), "alice")
    registry.register("digits", onnx_bytes(seed_value=3.0), "alice")
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),))
    registry.deployments.put(spec, "alice")
    registry.set_alias("digits", "production", 1, "alice")
    return registry


@pytest.mark.parametrize("strategy", ["canary", "blue_green", "ab_test", "shadow"])
def test_a_rollout_clients_could_not_call_is_refused_unless_forced(
    breaking: Registry, strategy: str
) -> None:
    with pytest.raises(Conflict) as refused:
        start_rollout(breaking, "digits", 2, strategy=strategy, plan={}, actor="alice")
    assert refused.value.message.startswith(REFUSAL)
    assert "--force" in refused.value.message
    assert breaking.rollouts.list() == []

    forced = start_rollout(
        breaking, "digits", 2, strategy=strategy, plan={}, actor="alice", force=True
    )
    assert forced.candidate.version == 2


def test_a_compatible_version_starts_without_force(breaking: Registry) -> None:
    started = start_rollout(breaking, "digits", 3, strategy="canary", plan={}, actor="alice")
    assert started.candidate.version == 3


def test_a_policy_started_rollout_is_refused_with_an_event(
    breaking: Registry, onnx_bytes: Callable[..., bytes]
) -> None:
    controller = RolloutController(breaking, Sources(Scripted()), Clock())
    breaking.policies.put("digits", "digits", "registered", {}, "alice")
    breaking.register("digits", onnx_bytes(input_name="pixels", seed_value=4.0), "alice")  # v4
    controller.tick()
    controller.tick()

    assert breaking.rollouts.list() == []
    skipped = breaking.list_events("digits", action="policy.skipped")
    assert len(skipped) == 1
    assert skipped[0].details["version"] == 4
    assert skipped[0].details["endpoint"] == "digits"
    assert (
        skipped[0]
        .details["reason"]
        .startswith(
            "not rolled out: digits v4 takes 'pixels' FP32 [-1,4]; the serving version v1 takes "
            "'x' FP32 [-1,4]"
        )
    )
    breaking.register("digits", onnx_bytes(seed_value=5.0), "alice")  # v5: compatible
    controller.tick()
    assert [r.candidate.version for r in breaking.rollouts.list()] == [5]


def test_moving_production_where_clients_could_not_follow_is_refused(breaking: Registry) -> None:
    with pytest.raises(Conflict, match=r"digits v2 takes 'features' .* the production version "
                                       r"v1 takes 'x' FP32 \[-1,4\]"):  # fmt: skip
        breaking.set_alias("digits", "production", 2, "alice")
    assert breaking.get_version("digits", "production").version == 1

    breaking.set_alias("digits", "candidate", 2, "alice")  # any other alias moves freely
    breaking.set_alias("digits", "production", 3, "alice")  # compatible
    moved = breaking.set_alias("digits", "production", 2, "alice", force=True)
    assert (moved.previous_version, moved.version) == (3, 2)


def test_registering_a_version_as_production_where_clients_could_not_follow_is_refused(
    breaking: Registry, onnx_bytes: Callable[..., bytes]
) -> None:
    production = VersionMetadata(aliases=("production",))
    with pytest.raises(Conflict, match="register it without the production alias, then move"):
        breaking.register("digits", onnx_bytes(width=5), "alice", production)
    assert [v.version for v in breaking.list_versions("digits")] == [1, 2, 3]
    assert breaking.register("digits", onnx_bytes(seed_value=6.0), "alice", production).version == 4
