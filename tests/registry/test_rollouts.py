"""Rollout records on SQLite and PostgreSQL: one transaction per move, the timeline, undoing
the newest promotion."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ferryman.errors import Conflict
from ferryman.registry import DeploymentSpec, Registry, RolloutStatus, VariantSpec

V1, V2 = VariantSpec(model="m", version=1), VariantSpec(model="m", version=2)


@pytest.fixture
def endpoint(registry: Registry, onnx_bytes: Callable[..., bytes]) -> Registry:
    for seed in (0.0, 1.0, 2.0):
        registry.register("m", onnx_bytes(seed_value=seed), "t")
    registry.deployments.put(DeploymentSpec(endpoint="m", variants=(V1,)), "t")
    registry.set_alias("m", "production", 1, "t")
    return registry


def spec(*variants: VariantSpec) -> DeploymentSpec:
    return DeploymentSpec(endpoint="m", variants=variants)


def test_a_move_changes_the_deployment_the_alias_and_the_rollout_together(
    endpoint: Registry,
) -> None:
    rollout = endpoint.rollouts.create("m", (V1, V2), {}, "t", strategy="blue_green")
    assert rollout.strategy == "blue_green"
    moved = endpoint.move_rollout(
        (rollout.id, "t", "promoted"),
        spec=spec(V2),
        production=2,
        details={"figures": {"requests": 10}},
        status=RolloutStatus.PROMOTED,
        weight=100,
        reason="done",
    )
    assert moved.status is RolloutStatus.PROMOTED
    assert moved.finished_at is not None
    assert moved.state == {"production_before": 1}
    assert endpoint.get_version("m", "production").version == 2
    assert [v.name for v in endpoint.deployments.get("m").spec.variants] == ["v2"]
    last = endpoint.rollouts.timeline(rollout.id)[-1]
    assert (last.action, last.details["figures"], last.details["weight"]) == (
        "rollout.promoted", {"requests": 10}, 100,
    )  # fmt: skip
    assert last.details["status"] == "promoted"


def test_a_move_that_fails_leaves_everything_as_it_was(endpoint: Registry) -> None:
    rollout = endpoint.rollouts.create("m", (V1, V2), {}, "t")
    endpoint.archive_version("m", 3, "t")
    v3 = VariantSpec(model="m", version=3)
    generation = endpoint.deployments.get("m").generation
    with pytest.raises(Conflict, match="archived"):
        endpoint.move_rollout((rollout.id, "t", "step"), spec=spec(V1, v3), production=2,
                              weight=50)  # fmt: skip
    assert endpoint.deployments.get("m").generation == generation
    assert endpoint.get_version("m", "production").version == 1
    assert endpoint.rollouts.get(rollout.id).weight == 0
    assert [e.action for e in endpoint.rollouts.timeline(rollout.id)] == ["rollout.created"]


def test_an_ended_rollout_refuses_moves_without_touching_the_deployment(
    endpoint: Registry,
) -> None:
    rollout = endpoint.rollouts.create("m", (V1, V2), {}, "t")
    endpoint.rollouts.transition(rollout.id, "t", "aborted", status=RolloutStatus.ABORTED)
    generation = endpoint.deployments.get("m").generation
    with pytest.raises(Conflict, match="already ended"):
        endpoint.move_rollout((rollout.id, "t", "step"), spec=spec(V1, V2), weight=10)
    assert endpoint.deployments.get("m").generation == generation


def test_only_the_newest_promoted_rollout_can_be_reverted(endpoint: Registry) -> None:
    first = endpoint.rollouts.create("m", (V1, V2), {}, "t")
    with pytest.raises(Conflict, match="only the newest rollout, once promoted"):
        endpoint.undo_promotion((first.id, "t"), spec(V1), 1, "undo")  # not promoted
    endpoint.rollouts.transition(first.id, "t", "promoted", status=RolloutStatus.PROMOTED)
    reverted = endpoint.undo_promotion((first.id, "t"), spec(V1), 1, "undo")
    assert (reverted.status, reverted.reason) == (RolloutStatus.ROLLED_BACK, "undo")
    assert endpoint.rollouts.timeline(first.id)[-1].details["after_promotion"] is True
    second = endpoint.rollouts.create("m", (V1, V2), {}, "t")
    endpoint.rollouts.transition(second.id, "t", "promoted", status=RolloutStatus.PROMOTED)
    with pytest.raises(Conflict, match="rolled_back"):
        endpoint.undo_promotion((first.id, "t"), spec(V1), 1, "again")


def test_undoing_a_promotion_is_one_transaction(endpoint: Registry) -> None:
    rollout = endpoint.rollouts.create("m", (V1, V2), {}, "t")
    endpoint.move_rollout((rollout.id, "t", "promoted"), spec=spec(V2), production=2,
                          status=RolloutStatus.PROMOTED, weight=100)  # fmt: skip
    endpoint.archive_version("m", 1, "t")  # the alias cannot go back to v1 now
    generation = endpoint.deployments.get("m").generation
    with pytest.raises(Conflict, match="archived"):
        endpoint.undo_promotion((rollout.id, "t"), spec(V1), 1, "undo")
    assert endpoint.deployments.get("m").generation == generation  # nothing half-written
    assert [v.name for v in endpoint.deployments.get("m").spec.variants] == ["v2"]
    assert endpoint.rollouts.get(rollout.id).status is RolloutStatus.PROMOTED
    assert endpoint.get_version("m", "production").version == 2

    endpoint.undo_promotion((rollout.id, "t"), spec(V2.model_copy(update={"version": 3})), 3, "x")
    assert endpoint.rollouts.get(rollout.id).status is RolloutStatus.ROLLED_BACK
    assert endpoint.get_version("m", "production").version == 3
    assert [v.name for v in endpoint.deployments.get("m").spec.variants] == ["v3"]


def test_a_policy_keeps_its_strategy(endpoint: Registry) -> None:
    stored = endpoint.policies.put("m", "m", "registered", {"bake_s": 5}, "t", strategy="shadow")
    assert (stored.strategy, endpoint.policies.get("m").strategy) == ("shadow", "shadow")
    assert endpoint.policies.put("m", "m", "registered", {}, "t").strategy == "canary"
