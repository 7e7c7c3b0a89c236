"""The reconciler's pure decisions: replica plans, restart back-off, route tables."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from ferryman.control.reconcile.plan import (
    Backoff,
    RestartPolicy,
    effective_weights,
    plan_replicas,
    route_table,
)
from ferryman.registry import DeploymentSpec, HeaderRuleSpec, VariantSpec
from ferryman.runtimes.base import Replica, ReplicaSpec, ReplicaState
from ferryman.runtimes.memory import InMemoryRuntime

V1 = ReplicaSpec(endpoint="digits", variant="v1", model="digits", version=1)
V2 = ReplicaSpec(endpoint="digits", variant="v2", model="digits", version=2)


def converge(
    runtime: InMemoryRuntime, desired: dict[tuple[str, str], tuple[ReplicaSpec, int]], ticks: int
) -> dict[tuple[str, str], Backoff]:
    backoff: dict[tuple[str, str], Backoff] = {}
    for _ in range(ticks):
        plan, backoff = plan_replicas(desired, runtime.observe(), backoff, runtime.clock_s)
        for replica_id in plan.stop:
            runtime.stop(replica_id)
        for spec in plan.start:
            runtime.start(spec)
        runtime.clock_s += 1
    return backoff


def states(runtime: InMemoryRuntime) -> list[tuple[str, str]]:
    return sorted((r.spec.variant, r.state.value) for r in runtime.observe())


def test_starts_the_desired_count_and_stops_the_surplus() -> None:
    runtime = InMemoryRuntime()
    converge(runtime, {V1.slot: (V1, 3)}, ticks=3)
    assert states(runtime) == [("v1", "ready")] * 3
    converge(runtime, {V1.slot: (V1, 1)}, ticks=2)
    assert states(runtime) == [("v1", "ready")]
    converge(runtime, {}, ticks=1)
    assert runtime.observe() == []


def test_surplus_stops_starting_replicas_before_ready_ones() -> None:
    started = Replica("s", V1, ReplicaState.STARTING, "http://127.0.0.1:1", 5.0)
    ready = Replica("r", V1, ReplicaState.READY, "http://127.0.0.1:2", 1.0)
    plan, _ = plan_replicas({V1.slot: (V1, 1)}, [ready, started], {}, 10.0)
    assert plan.stop == ("s",)


def test_crashed_replicas_are_replaced_with_capped_backoff() -> None:
    runtime = InMemoryRuntime(failing_templates={V1.template})
    policy = RestartPolicy(base_s=2, max_s=8)
    backoff: dict[tuple[str, str], Backoff] = {}
    starts = []
    for tick in range(40):
        plan, backoff = plan_replicas({V1.slot: (V1, 1)}, runtime.observe(), backoff, tick, policy)
        for replica_id in plan.stop:
            runtime.stop(replica_id)
        for spec in plan.start:
            runtime.start(spec)
            starts.append(tick)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[:4] == [3, 5, 9, 9]  # 1 tick to fail, then back-off 2, 4, 8, 8 (capped)
    assert backoff[V1.slot].failures >= 4


def test_a_ready_replica_resets_the_backoff() -> None:
    runtime = InMemoryRuntime()
    backoff = converge(runtime, {V1.slot: (V1, 1)}, ticks=3)
    assert backoff[V1.slot] == Backoff()
    runtime.crash(next(iter(runtime.replicas)))
    backoff = converge(runtime, {V1.slot: (V1, 1)}, ticks=1)
    assert backoff[V1.slot].failures == 1
    converge(runtime, {V1.slot: (V1, 1)}, ticks=5)
    assert states(runtime) == [("v1", "ready")]


def test_a_changed_template_rolls_only_after_the_new_ones_are_ready() -> None:
    runtime = InMemoryRuntime(ready_after=3)
    converge(runtime, {V1.slot: (V1, 2)}, ticks=4)
    old = set(runtime.replicas)
    tuned = replace(V1, max_batch_size=8)
    backoff: dict[tuple[str, str], Backoff] = {}
    for _ in range(6):
        plan, backoff = plan_replicas({V1.slot: (tuned, 2)}, runtime.observe(), backoff, 0.0)
        ready_new = [
            r for r in runtime.replicas.values()
            if r.spec == tuned and r.state is ReplicaState.READY
        ]  # fmt: skip
        if set(plan.stop) & old:
            assert len(ready_new) == 2  # the old ones go only once two new ones serve
        for replica_id in plan.stop:
            runtime.stop(replica_id)
        for spec in plan.start:
            runtime.start(spec)
    assert {r.spec for r in runtime.observe()} == {tuned}


@pytest.mark.parametrize(
    ("weights", "serving", "expected"),
    [
        ({"v1": 90, "v2": 10}, {"v1", "v2"}, {"v1": 90, "v2": 10}),
        ({"v1": 90, "v2": 10}, {"v1"}, {"v1": 100, "v2": 0}),
        ({"v1": 90, "v2": 10}, {"v2"}, {"v1": 0, "v2": 100}),
        ({"v1": 90, "v2": 10}, set(), {"v1": 90, "v2": 10}),
        ({"a": 50, "b": 25, "c": 25}, {"b", "c"}, {"a": 0, "b": 50, "c": 50}),
        ({"a": 34, "b": 33, "c": 33}, {"a", "b"}, {"a": 51, "b": 49, "c": 0}),
        ({"a": 100, "b": 0}, {"b"}, {"a": 0, "b": 100}),
    ],
)
def test_effective_weights(
    weights: dict[str, int], serving: set[str], expected: dict[str, int]
) -> None:
    result = effective_weights(weights, serving)
    assert result == expected
    assert sum(result.values()) == 100


def test_route_table_has_ready_backends_rules_sticky_and_shadow() -> None:
    deployment = DeploymentSpec(
        endpoint="digits",
        variants=(
            VariantSpec(model="digits", version=1, weight=90),
            VariantSpec(model="digits", version=2, kind="onnx-int8", weight=10),
            VariantSpec(model="digits", version=3, weight=0),
        ),
        rules=(HeaderRuleSpec(header="x-beta", equals="1", variant="v2-onnx-int8"),),
        sticky_header="x-user-id",
        shadow="v3",
    )
    ready = {
        ("digits", "v1"): ["http://127.0.0.1:2", "http://127.0.0.1:1"],
        ("digits", "v3"): ["http://127.0.0.1:3"],
    }
    table = route_table([deployment], ready, generation=7)
    route = table.endpoints["digits"]
    assert table.generation == 7
    assert [(v.name, v.weight, v.backends) for v in route.variants] == [
        ("v1", 100, ("http://127.0.0.1:1", "http://127.0.0.1:2")),
        ("v2-onnx-int8", 0, ()),
        ("v3", 0, ("http://127.0.0.1:3",)),
    ]
    assert route.shadow == "v3"
    assert route.sticky_header == "x-user-id"
    assert route.rules[0].variant == "v2-onnx-int8"
