"""A policy's offline gate: a version whose offline metric falls short of production's (or
of a floor) is held back before any traffic moves, with an event that says why."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources
from ferryman.errors import InvalidInput
from ferryman.registry import (
    DeploymentSpec,
    OfflineGate,
    Registry,
    VariantSpec,
    VersionMetadata,
    offline_gate,
)
from tests.control.scripted import Scripted
from tests.support import SteppedClock as Clock

GATE = OfflineGate(offline_metric="accuracy", max_offline_drop=0.02)


@pytest.mark.parametrize(
    ("gate", "candidate", "held"),
    [
        (GATE, {"accuracy": 0.889}, "offline accuracy of v3 is 0.889, more than "
                                    "max_offline_drop 0.02 below production v1's 0.969"),
        (GATE, {"accuracy": 0.95}, None),
        (GATE, {"f1": 0.99}, "v3 has no offline metric 'accuracy' for the policy's offline "
                             "gate (record it at registration: --metric accuracy=VALUE)"),
        (OfflineGate(offline_metric="accuracy", min_offline=0.97), {"accuracy": 0.95},
         "offline accuracy of v3 is 0.95 < min_offline 0.97"),
        (OfflineGate(offline_metric="accuracy", min_offline=0.9), {"accuracy": 0.95}, None),
        (OfflineGate(offline_metric="f1", max_offline_drop=0.1), {"f1": 0.9},
         "production v1 has no offline metric 'f1' to compare with"),
    ],
)  # fmt: skip
def test_the_gate_names_the_metric_the_bound_and_both_values(
    gate: OfflineGate, candidate: dict[str, float], held: str | None
) -> None:
    assert gate.held((3, candidate), (1, {"accuracy": 0.969})) == held


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ((None, 0.02, None), "name it too (offline_metric, e.g. accuracy"),
        (("accuracy", None, None), "offline_metric 'accuracy' needs a bound"),
        (("accuracy", -0.1, None), "max_offline_drop -0.1 must be 0 or more"),
    ],
)
def test_a_gate_without_its_metric_or_a_bound_is_a_clear_400(
    fields: tuple[str | None, float | None, float | None], says: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        offline_gate(*fields)
    assert says in refused.value.message
    assert offline_gate(None) is None


@pytest.fixture
def serving(registry: Registry, onnx_bytes: Callable[..., bytes]) -> Registry:
    """fraud v1 (offline accuracy 0.969) serves and is production."""
    registry.register("fraud", onnx_bytes(), "alice", VersionMetadata(metrics={"accuracy": 0.969}))
    spec = DeploymentSpec(endpoint="fraud", variants=(VariantSpec(model="fraud", version=1),))
    registry.deployments.put(spec, "alice")
    registry.set_alias("fraud", "production", 1, "alice")
    return registry


def test_a_policy_holds_a_weaker_version_and_rolls_out_a_good_one(
    serving: Registry, onnx_bytes: Callable[..., bytes]
) -> None:
    controller = RolloutController(serving, Sources(Scripted()), Clock())
    serving.policies.put("fraud", "fraud", "registered", {}, "alice", gate=GATE)
    assert serving.policies.get("fraud").offline_gate == GATE
    weak = VersionMetadata(metrics={"accuracy": 0.889})
    serving.register("fraud", onnx_bytes(seed_value=2.0), "alice", weak)  # v2
    controller.tick()
    controller.tick()

    assert serving.rollouts.list() == []
    skipped = serving.list_events("fraud", action="policy.skipped")
    assert [(e.details["version"], e.details["reason"]) for e in skipped] == [
        (2, "held by the offline gate: offline accuracy of v2 is 0.889, more than "
            "max_offline_drop 0.02 below production v1's 0.969"),
    ]  # fmt: skip

    good = VersionMetadata(metrics={"accuracy": 0.96})
    serving.register("fraud", onnx_bytes(seed_value=3.0), "alice", good)  # v3
    controller.tick()
    assert [r.candidate.version for r in serving.rollouts.list()] == [3]
