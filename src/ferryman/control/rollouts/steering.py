"""What a rollout does to its endpoint — start, weights, end — for the controller and by hand.

One implementation for the rollout controller, the CLI (``ferryman rollout …``) and the API
(``/api/v1/rollouts``). Each change of the endpoint's deployment is written in the same
transaction as the rollout's transition and its event (:meth:`Registry.move_rollout`), so
a control plane killed at any point leaves both in step (RELIABILITY F5). The deployment
specs are computed by two pure functions, :func:`spec_at` and :func:`spec_after`.

By hand: ``pause`` and ``resume`` hold and release a rollout; ``promote`` ends it with the
candidate; ``abort`` and ``rollback`` end it with the baseline (recorded as aborted, or
rolled back); ``rollback`` of the endpoint's newest *promoted* rollout puts its baseline
back at 100% and the ``production`` alias back where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ferryman.control.rollouts.plans import Strategy, parse_plan, parse_strategy
from ferryman.control.rollouts.state import Phase, RolloutState
from ferryman.errors import Conflict
from ferryman.registry import (
    DeploymentSpec,
    Registry,
    RolloutRecord,
    RolloutStatus,
    VariantSpec,
)
from ferryman.signature import incompatibility

FORCE_HINT = 'to roll it out anyway, pass --force (API: "force": true)'

ACTIONS = {
    RolloutStatus.PROMOTED: "promoted",
    RolloutStatus.ROLLED_BACK: "rolled_back",
    RolloutStatus.ABORTED: "aborted",
    RolloutStatus.COMPLETED: "completed",
}


def baseline_of(spec: DeploymentSpec) -> VariantSpec:
    """The endpoint's one serving variant, which a rollout starts from."""
    serving = [v for v in spec.variants if v.weight > 0 and v.name != spec.shadow]
    if len(serving) != 1:
        names = ", ".join(v.name for v in serving)
        raise Conflict(
            f"endpoint {spec.endpoint!r} serves {names}; a rollout starts from one variant "
            "(deploy one version at 100% first)"
        )
    return serving[0]


def change_for(
    spec: DeploymentSpec, version: int, strategy: Strategy
) -> tuple[tuple[VariantSpec, VariantSpec], dict[str, Any]]:
    """(baseline, candidate) of a rollout of ``version`` on ``spec``, and its initial state.

    The candidate gets as many replicas as the baseline: blue-green switches all traffic to
    it at once, and a shadow sees a copy of all of it.
    """
    baseline = baseline_of(spec)
    if baseline.version == version:
        raise Conflict(f"endpoint {spec.endpoint!r} already serves {baseline.name}")
    if strategy is Strategy.SHADOW and spec.shadow is not None:
        raise Conflict(
            f"endpoint {spec.endpoint!r} already mirrors to {spec.shadow}; remove that shadow first"
        )
    candidate = VariantSpec(model=baseline.model, version=version, replicas=baseline.replicas)
    state = RolloutState() if strategy is Strategy.CANARY else RolloutState(phase=Phase.WARMING)
    if strategy is Strategy.AB_TEST:
        state = state.with_(sticky_header_before=spec.sticky_header)
    return (baseline, candidate), state.stored()


def clients_refused(registry: Registry, baseline: VariantSpec, version: int) -> str | None:
    """Why clients of the serving ``baseline`` could not call ``version`` of its model (its
    inputs' names, datatypes and shapes spelled out), or None when they could."""
    current = registry.get_version(baseline.model, baseline.version).signature
    candidate = registry.get_version(baseline.model, version).signature
    return incompatibility(
        baseline.model, (baseline.version, current), (version, candidate), "serving"
    )


def start_rollout(
    registry: Registry,
    endpoint: str,
    version: int,
    *,
    strategy: str,
    plan: object,
    actor: str,
    force: bool = False,
) -> RolloutRecord:
    """Create a rollout of ``version`` on ``endpoint``; the controller takes it from there.

    ``plan`` is checked for ``strategy`` first (a bad plan is a 400 that names the field).
    A version whose inputs the serving version's clients could not send is refused (409)
    unless ``force``: its 4xx answers would then roll it back (:mod:`.rollout`).
    """
    kind = parse_strategy(strategy)
    checked = parse_plan(kind, plan)
    spec = registry.deployments.get(endpoint).spec
    for active in registry.rollouts.list(endpoint, active_only=True):
        raise Conflict(
            f"endpoint {endpoint!r} already has rollout {active.id} in progress; wait for it, "
            f"or end it (ferryman rollout abort {active.id})"
        )
    change, state = change_for(spec, version, kind)
    refused = clients_refused(registry, change[0], version)
    if refused is not None and not force:
        raise Conflict(f"{refused}; {FORCE_HINT}")
    plan_json = checked.model_dump(mode="json")
    return registry.rollouts.create(
        endpoint, change, plan_json, actor, strategy=kind.value, state=state
    )


def is_mirroring(rollout: RolloutRecord) -> bool:
    """Whether the candidate receives copies only (a warmed shadow, before any canary)."""
    phase = RolloutState.of(rollout.state).phase
    return rollout.strategy == Strategy.SHADOW and phase is Phase.SHADOWING


def spec_at(spec: DeploymentSpec, rollout: RolloutRecord, weight: int) -> DeploymentSpec:
    """``spec`` with the candidate at ``weight`` percent and the baseline at the rest.

    The baseline stays at 0% when the candidate has it all, so a rollback is one weight
    change; a shadow's candidate is the endpoint's mirror; an A/B test's split is sticky; a
    blue-green on an autoscaled endpoint holds both pools at its ``pool_replicas``.
    """
    standby = RolloutState.of(rollout.state).pool_replicas
    baseline = rollout.baseline.model_copy(
        update={"weight": 100 - weight, "standby_replicas": standby}
    )
    candidate = rollout.candidate.model_copy(update={"weight": weight, "standby_replicas": standby})
    others = [v for v in spec.variants if v.name not in {baseline.name, candidate.name}]
    update: dict[str, Any] = {"variants": (baseline, candidate, *others)}
    if is_mirroring(rollout):
        update["shadow"] = candidate.name
    elif spec.shadow == candidate.name:
        update["shadow"] = None
    if rollout.strategy == Strategy.AB_TEST:
        update["sticky_header"] = parse_plan(Strategy.AB_TEST, rollout.plan).sticky_header  # type: ignore[union-attr]
    return spec.model_copy(update=update)


def spec_after(spec: DeploymentSpec, rollout: RolloutRecord, promoted: bool) -> DeploymentSpec:
    """``spec`` once the rollout ends: the candidate (promoted) or the baseline alone at 100%,
    without the rollout's mirror or its sticky split."""
    kept = rollout.candidate if promoted else rollout.baseline
    involved = {rollout.baseline.name, rollout.candidate.name}
    others = [v for v in spec.variants if v.name not in involved]
    update: dict[str, Any] = {"variants": (kept.model_copy(update={"weight": 100}), *others)}
    if spec.shadow in involved:
        update["shadow"] = None
    if rollout.strategy == Strategy.AB_TEST:
        update["sticky_header"] = RolloutState.of(rollout.state).sticky_header_before
    return spec.model_copy(update=update)


def move_to(
    registry: Registry,
    rollout: RolloutRecord,
    weight: int,
    actor: str,
    details: dict[str, Any] | None = None,
    **changes: Any,
) -> RolloutRecord:
    """Serve the candidate at ``weight`` and record the step (``changes``, ``details``)."""
    spec = spec_at(registry.deployments.get(rollout.endpoint).spec, rollout, weight)
    action = str(changes.pop("action", "step"))
    move = (rollout.id, actor, action)
    return registry.move_rollout(move, spec=spec, details=details, weight=weight, **changes)


def end(
    registry: Registry,
    rollout: RolloutRecord,
    status: RolloutStatus,
    *,
    reason: str,
    actor: str,
    details: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    failed_checks: int | None = None,
) -> RolloutRecord:
    """End the rollout: the candidate alone and the ``production`` alias on it (PROMOTED), or
    the baseline alone (any other end), in one transaction with the final transition —
    with the failed checks that ended it, when a check did."""
    promoted = status is RolloutStatus.PROMOTED
    spec = spec_after(registry.deployments.get(rollout.endpoint).spec, rollout, promoted)
    counted = {} if failed_checks is None else {"failed_checks": failed_checks}
    return registry.move_rollout(
        (rollout.id, actor, ACTIONS[status]),
        spec=spec,
        production=rollout.candidate.version if promoted else None,
        details=details,
        status=status,
        weight=100 if promoted else 0,
        reason=reason,
        state={**rollout.state, **(state or {})},
        **counted,
    )


# -- by hand ---------------------------------------------------------------------------------

Steer = Callable[[Registry, int, str], RolloutRecord]
"""A change by hand: (registry, rollout id, actor) → the rollout after it."""


def pause(registry: Registry, rollout_id: int, actor: str) -> RolloutRecord:
    """Hold a rollout where it is until resumed."""
    return registry.rollouts.transition(
        rollout_id, actor, "paused", status=RolloutStatus.PAUSED, reason="paused by hand"
    )


def resume(registry: Registry, rollout_id: int, actor: str) -> RolloutRecord:
    """Let a paused rollout go on; its next window starts now."""
    return registry.rollouts.transition(
        rollout_id, actor, "resumed", status=RolloutStatus.PROGRESSING, reason="resumed by hand"
    )


def promote(registry: Registry, rollout_id: int, actor: str) -> RolloutRecord:
    """Promote the candidate now: all traffic, and the production alias."""
    rollout = _active(registry, rollout_id)
    phase = RolloutState.of(rollout.state).phase
    if rollout.strategy == Strategy.BLUE_GREEN and phase is Phase.WARMING:
        raise Conflict(
            f"rollout {rollout_id}: the new pool is not ready yet and has served nothing; wait "
            "for the switch, or abort"
        )
    return end(registry, rollout, RolloutStatus.PROMOTED, reason="promoted by hand", actor=actor)


def abort(registry: Registry, rollout_id: int, actor: str) -> RolloutRecord:
    """Send all traffic back to the baseline now."""
    rollout = _active(registry, rollout_id)
    return end(registry, rollout, RolloutStatus.ABORTED, reason="aborted by hand", actor=actor)


def rollback(registry: Registry, rollout_id: int, actor: str) -> RolloutRecord:
    """Back to the baseline: an active rollout ends rolled back; the endpoint's newest
    promoted rollout is undone (baseline at 100%, production alias back)."""
    rollout = registry.rollouts.get(rollout_id)
    if not rollout.status.is_final:
        reason = "rolled back by hand"
        return end(registry, rollout, RolloutStatus.ROLLED_BACK, reason=reason, actor=actor)
    if rollout.status is not RolloutStatus.PROMOTED:
        raise Conflict(
            f"rollout {rollout_id} already ended ({rollout.status.value}): nothing to undo"
        )
    return _undo_promotion(registry, rollout, actor)


def _undo_promotion(registry: Registry, rollout: RolloutRecord, actor: str) -> RolloutRecord:
    newest = registry.rollouts.list(rollout.endpoint)[-1]
    if newest.id != rollout.id:
        raise Conflict(
            f"rollout {newest.id} is the newest on {rollout.endpoint!r}; only the newest "
            f"rollout, once promoted, can be rolled back (roll back {newest.id} instead)"
        )
    spec = registry.deployments.get(rollout.endpoint).spec
    names = [v.name for v in spec.variants]
    if rollout.candidate.name in names:
        promoted = spec.variant(rollout.candidate.name)
        restored = rollout.baseline.model_copy(
            update={"weight": promoted.weight, "replicas": promoted.replicas}
        )
        variants = tuple(restored if v.name == promoted.name else v for v in spec.variants
                         if v.name != restored.name)  # fmt: skip
        spec = spec.model_copy(update={"variants": variants})
    elif rollout.baseline.name not in names:
        raise Conflict(
            f"endpoint {rollout.endpoint!r} serves {', '.join(names)}: neither "
            f"{rollout.candidate.name} nor {rollout.baseline.name}; deploy by hand instead"
        )
    version = RolloutState.of(rollout.state).production_before or rollout.baseline.version
    reason = f"promotion undone by hand: {rollout.baseline.name} serves again"
    return registry.undo_promotion((rollout.id, actor), spec, version, reason)


def _active(registry: Registry, rollout_id: int) -> RolloutRecord:
    rollout = registry.rollouts.get(rollout_id)
    if rollout.status.is_final:
        raise Conflict(f"rollout {rollout_id} already ended ({rollout.status.value})")
    return rollout
