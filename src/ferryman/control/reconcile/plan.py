"""The reconciler's decisions, as pure functions of desired and observed state.

:func:`plan_replicas` says which replicas to start and stop so that every (endpoint,
variant) slot has its desired count of current replicas, restarting failed ones with a
capped exponential back-off and replacing outdated ones only once their successors are
ready. :func:`route_table` turns the ready replicas into the table the gateway applies:
only ready replicas take traffic, and a variant with none lends its weight to those that
have some, so no request waits on a replica that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ferryman.gateway.routes import EndpointRoute, HeaderRule, RouteTable, VariantRoute
from ferryman.registry import DeploymentSpec
from ferryman.runtimes.base import Replica, ReplicaSpec, ReplicaState
from ferryman.types import Slot


@dataclass(frozen=True)
class Backoff:
    failures: int = 0
    not_before_s: float = 0.0


@dataclass(frozen=True)
class RestartPolicy:
    base_s: float = 1.0
    max_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        return min(self.max_s, self.base_s * float(2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class Plan:
    start: tuple[ReplicaSpec, ...] = ()
    stop: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def plan_replicas(
    desired: Mapping[Slot, tuple[ReplicaSpec, int]],
    observed: Sequence[Replica],
    backoff: Mapping[Slot, Backoff],
    now_s: float,
    restart: RestartPolicy = RestartPolicy(),
) -> tuple[Plan, dict[Slot, Backoff]]:
    """Starts and stops that move ``observed`` towards ``desired``; new back-off state."""
    start: list[ReplicaSpec] = []
    stop: list[str] = []
    notes: list[str] = []
    new_backoff: dict[Slot, Backoff] = {}
    slots = set(desired) | {replica.spec.slot for replica in observed}
    for slot in sorted(slots):
        replicas = [replica for replica in observed if replica.spec.slot == slot]
        failed = [r for r in replicas if r.state is ReplicaState.FAILED]
        stop += [r.id for r in failed]
        notes += [f"replica {r.id} of {slot[0]}/{slot[1]} failed: {r.reason}" for r in failed]
        if slot not in desired:
            stop += [r.id for r in replicas if r.state is not ReplicaState.FAILED]
            continue
        spec, count = desired[slot]
        state = _next_backoff(backoff.get(slot, Backoff()), replicas, spec, now_s, restart)
        new_backoff[slot] = state
        slot_start, slot_stop = _plan_slot(
            spec, count, replicas, can_start=now_s >= state.not_before_s
        )
        start += slot_start
        stop += slot_stop
    return Plan(tuple(start), tuple(stop), tuple(notes)), new_backoff


def _plan_slot(
    spec: ReplicaSpec, count: int, replicas: Sequence[Replica], can_start: bool
) -> tuple[list[ReplicaSpec], list[str]]:
    live = [r for r in replicas if r.state is not ReplicaState.FAILED]
    current = [r for r in live if r.spec.template == spec.template]
    outdated = [r for r in live if r.spec.template != spec.template]
    start = [spec] * (count - len(current)) if len(current) < count and can_start else []
    # Surplus: starting ones first (they serve nobody yet), then the newest ready ones.
    surplus = sorted(current, key=lambda r: (r.state is ReplicaState.READY, -r.started_at_s))
    stop = [r.id for r in surplus[: max(0, len(current) - count)]]
    ready_current = sum(1 for r in current if r.state is ReplicaState.READY)
    if ready_current >= count:
        stop += [r.id for r in outdated]
    return start, stop


def _next_backoff(
    state: Backoff,
    replicas: Sequence[Replica],
    spec: ReplicaSpec,
    now_s: float,
    restart: RestartPolicy,
) -> Backoff:
    current = [r for r in replicas if r.spec.template == spec.template]
    if any(r.state is ReplicaState.READY for r in current):
        return Backoff()
    failures = state.failures + sum(1 for r in current if r.state is ReplicaState.FAILED)
    if failures == state.failures:
        return state
    return Backoff(failures, now_s + restart.delay_s(failures))


def route_table(
    deployments: Sequence[DeploymentSpec],
    ready_urls: Mapping[Slot, Sequence[str]],
    generation: int,
    token_digests: Mapping[str, tuple[str, ...]] | None = None,
) -> RouteTable:
    """The gateway's table: ready backends only, weights moved off variants without any;
    with the endpoint of each inference token by its digest (``token_digests``: endpoint →
    digests, deployed or not, so another endpoint's token is told apart from none)."""
    token_digests = token_digests or {}
    endpoints = {}
    for deployment in deployments:
        backends = {
            v.name: tuple(sorted(ready_urls.get((deployment.endpoint, v.name), ())))
            for v in deployment.variants
        }
        weights = effective_weights(
            {v.name: v.weight for v in deployment.variants if v.name != deployment.shadow},
            {name for name, urls in backends.items() if urls},
        )
        variants = tuple(
            VariantRoute(
                name=v.name,
                model=v.model,
                version=v.version,
                weight=weights.get(v.name, 0),
                backends=backends[v.name],
            )
            for v in deployment.variants
        )
        endpoints[deployment.endpoint] = EndpointRoute(
            endpoint=deployment.endpoint,
            variants=variants,
            rules=tuple(HeaderRule(**rule.model_dump()) for rule in deployment.rules),
            sticky_header=deployment.sticky_header,
            shadow=deployment.shadow,
            require_token=deployment.require_token,
        )
    owners = {digest: name for name, digests in token_digests.items() for digest in digests}
    return RouteTable(generation=generation, endpoints=endpoints, inference_tokens=owners)


def effective_weights(weights: Mapping[str, int], serving: set[str]) -> dict[str, int]:
    """Give the weight of variants without ready replicas to those with some, in proportion.

    >>> effective_weights({"v1": 90, "v2": 10}, {"v1"})
    {'v1': 100, 'v2': 0}
    """
    live = {name: weight for name, weight in weights.items() if name in serving}
    if not live or len(live) == len(weights):
        return dict(weights)
    total = sum(live.values())
    if total == 0:  # only zero-weight variants are up: share equally
        live = dict.fromkeys(live, 1)
        total = len(live)
    shares = {name: 100 * weight / total for name, weight in live.items()}
    result = {name: int(share) for name, share in shares.items()}
    by_remainder = sorted(shares, key=lambda name: shares[name] - result[name], reverse=True)
    for name in by_remainder[: 100 - sum(result.values())]:
        result[name] += 1
    return {name: result.get(name, 0) for name in weights}
