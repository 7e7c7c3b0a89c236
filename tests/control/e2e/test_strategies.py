"""Issue 6 end to end: blue-green, A/B test and shadow rollouts on real processes and HTTP.

Each runs on a real control plane, gateway and replicas under constant load; the rollout is
read from the registry in the test process (the same SQLite file), every ~50 ms.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.registry import Registry, RolloutRecord
from tests.conftest import make_onnx, make_unloadable_onnx
from tests.control.e2e.harness import Load, Stack, wait_for
from tests.control.e2e.test_rollouts import digit_body, failing_on_30_percent

pytestmark = pytest.mark.e2e


def newest(registry: Registry) -> RolloutRecord:
    return registry.rollouts.list("m")[-1]


def started(stack: Stack, tmp_path: Path, model: bytes, *args: str) -> None:
    """Deploy v1 on one replica, register ``model`` as v2, start a rollout with ``args``."""
    stack.ferryman("deploy", "m", "--replicas", "1")
    wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "v1 ready")
    path = tmp_path / "v2.onnx"
    path.write_bytes(model)
    stack.ferryman("register", str(path), "--model", "m")


def until(registry: Registry, done: Callable[[RolloutRecord], bool], timeout_s: float) -> float:
    return wait_for(lambda: done(newest(registry)), timeout_s, "the rollout")


def test_blue_green_switches_at_once_to_a_ready_pool_and_keeps_the_old_one_through_the_bake(
    stack: Stack, tmp_path: Path
) -> None:
    started(stack, tmp_path, make_onnx(seed_value=2.0))
    with stack.reading() as registry, Load(f"{stack.gateway}/v2/models/m/infer", rate=40,
                                          max_s=60).running() as load:  # fmt: skip
        stack.ferryman(
            "rollout", "start", "m", "--to", "2", "--strategy", "blue-green", "--bake", "4",
            "--interval", "2", "--min-requests", "5", "--warmup-timeout", "60",
        )  # fmt: skip
        until(registry, lambda r: r.weight == 100, 60)
        switched_s = load.now_s()
        assert len(stack.replica_pids()) == 2  # the old pool is kept for an instant switch back
        until(registry, lambda r: r.status.is_final, 30)
        promoted_s = load.now_s()
        final = newest(registry)
        wait_for(lambda: len(stack.replica_pids()) == 1, 30, "the old pool gone")
        story = [e.action for e in registry.rollouts.timeline(final.id)]
    assert final.status.value == "promoted", final.reason
    assert load.failures() == []
    assert promoted_s - switched_s >= 4 - 0.5  # the bake, on the monotonic clock
    assert story[:3] == ["rollout.created", "rollout.warming", "rollout.switched"]
    assert story[-1] == "rollout.promoted"
    first_v2 = min(o.at_s for o in load.outcomes if o.variant == "v2")
    last_v1 = max(o.at_s for o in load.outcomes if o.variant == "v1")
    assert last_v1 - first_v2 < 1.5  # all at once: the two overlap only while the table moves
    assert load.outcomes[-1].variant == "v2"


def test_a_blue_green_pool_that_cannot_load_is_rolled_back_having_served_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """RELIABILITY F2 for blue-green: v2 passes the format gate but cannot load."""
    started(stack, tmp_path, make_unloadable_onnx())
    with stack.reading() as registry, Load(f"{stack.gateway}/v2/models/m/infer", rate=40,
                                          max_s=45).running() as load:  # fmt: skip
        stack.ferryman("rollout", "start", "m", "--to", "2", "--strategy", "blue-green")
        until(registry, lambda r: r.status.is_final, 40)
        final = newest(registry)
    assert final.status.value == "rolled_back"
    assert "failed to load" in final.reason
    assert load.failures() == []
    assert {o.variant for o in load.outcomes} == {"v1"}


def test_an_ab_test_splits_users_stickily_and_finds_the_worse_version(
    stack: Stack, tmp_path: Path
) -> None:
    """v2 fails 30% of inputs: the test names v1 the winner (success rate), each user keeps
    one variant while it runs, and with --promote-winner v2 is rolled back."""
    started(stack, tmp_path, failing_on_30_percent())
    users = [f"user-{n}" for n in range(200)]
    with stack.reading() as registry, Load(
        f"{stack.gateway}/v2/models/m/infer", rate=40, max_s=60, body=digit_body,
        headers=lambda: {"x-user-id": random.choice(users)},
    ).running() as load:  # fmt: skip
        stack.ferryman(
            "rollout", "start", "m", "--to", "2", "--strategy", "ab", "--split", "50",
            "--sticky-header", "x-user-id", "--interval", "2", "--max-duration", "30",
            "--min-samples", "100", "--promote-winner",
        )  # fmt: skip
        until(registry, lambda r: r.status.is_final, 50)
        final = newest(registry)
    result = final.state["result"]
    assert final.status.value == "rolled_back", final.reason
    assert result["winner"] == "v1"
    assert result["p_value"] < result["alpha_per_look"]
    assert result["candidate"]["rate"] < result["baseline"]["rate"]
    assert [o for o in load.failures() if o.variant != "v2"] == []
    on_v2 = [o for o in load.outcomes if o.variant == "v2"]
    begin, end = min(o.at_s for o in on_v2) + 1, max(o.at_s for o in on_v2) - 1
    seen: dict[str, set[str]] = {}
    for outcome in load.outcomes:
        if begin <= outcome.at_s <= end:
            seen.setdefault(dict(outcome.headers)["x-user-id"], set()).add(outcome.variant)
    assert len(seen) >= 20, f"the split ran {end - begin + 2:.1f} s: too short to judge"
    assert all(len(variants) == 1 for variants in seen.values())  # sticky per user
    shares = sum(variants == {"v2"} for variants in seen.values()) / len(seen)
    assert 0.3 < shares < 0.7  # about half the users


def test_a_shadow_sees_every_request_and_never_answers_a_client(
    stack: Stack, tmp_path: Path
) -> None:
    started(stack, tmp_path, make_onnx(seed_value=2.0))
    with stack.reading() as registry, Load(f"{stack.gateway}/v2/models/m/infer", rate=40,
                                          max_s=60, body=digit_body).running() as load:  # fmt: skip
        stack.ferryman(
            "rollout", "start", "m", "--to", "2", "--strategy", "shadow", "--duration", "6",
            "--interval", "2", "--min-compared", "10",
        )  # fmt: skip
        until(registry, lambda r: r.status.is_final, 50)
        final = newest(registry)
        timeline = registry.rollouts.timeline(final.id)
        wait_for(lambda: len(stack.replica_pids()) == 1, 30, "the shadow's replica gone")
        spec = registry.deployments.get("m").spec
    assert final.status.value == "completed", final.reason
    report = final.state["report"]
    assert report["compared"] > 50
    assert report["requests"] >= 0.9 * report["compared"]  # its own replicas saw them too
    assert report["agreement"] is not None
    assert {o.variant for o in load.outcomes} == {"v1"}  # no client got a shadow's answer
    assert {o.version for o in load.outcomes} == {"1"}
    assert load.failures() == []
    assert [e.action for e in timeline][:3] == ["rollout.created", "rollout.warming",
                                                "rollout.mirroring"]  # fmt: skip
    assert (spec.shadow, [v.name for v in spec.variants]) == (None, ["v1"])
    assert json.dumps(timeline[-1].details["report"])
