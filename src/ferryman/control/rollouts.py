"""The rollout controller: step canaries forward, or back, from what the gateway saw.

Each tick, for every active rollout: apply its first step if it has none yet; otherwise,
once its analysis window (``interval_s``, on the monotonic clock) has passed, compare two
snapshots of the gateway's traffic, analyse the candidate's window, decide, and act —
change the deployment's weights, move the ``production`` alias on promotion, and persist
the rollout's new state with its event. Windows live in memory: after a restart a window
starts afresh, so a restart can delay a promotion but never hasten one (RELIABILITY F5, F9).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ferryman.control.drift import Classes, grown, jensen_shannon
from ferryman.control.rollout import (
    Action,
    Analysis,
    CanaryPlan,
    Decision,
    Drift,
    ModelSignals,
    Progress,
    Verdict,
    analyse,
    decide,
)
from ferryman.control.traffic import Key, Traffic, window
from ferryman.errors import Conflict, NotFound
from ferryman.registry import (
    Registry,
    RolloutRecord,
    RolloutStatus,
    Trigger,
    VariantSpec,
)

logger = logging.getLogger(__name__)

ACTOR = "rollouts"
TrafficSource = Callable[[], dict[Key, Traffic] | None]
"""The gateway's traffic totals now, or None when they cannot be read."""
PredictionSource = Callable[[], dict[Key, Classes]]
"""Top-1 class counts per (endpoint, variant), summed over its ready replicas."""
SignalSource = Callable[[RolloutRecord], ModelSignals]
"""Accuracy from feedback and input drift of a rollout's candidate and baseline."""


@dataclass(frozen=True)
class Window:
    started_s: float
    totals: dict[Key, Traffic] | None
    classes: dict[Key, Classes]


def start_canary(
    registry: Registry, endpoint: str, version: int, plan: CanaryPlan, actor: str
) -> RolloutRecord:
    """Create a canary rollout of ``version`` against the endpoint's only serving variant."""
    spec = registry.deployments.get(endpoint).spec
    serving = [v for v in spec.variants if v.weight > 0 and v.name != spec.shadow]
    if len(serving) != 1:
        names = ", ".join(v.name for v in serving)
        raise Conflict(f"endpoint {endpoint!r} serves {names}; a canary starts from one variant")
    baseline = serving[0]
    registry.get_version(baseline.model, version)  # it exists
    candidate = VariantSpec(model=baseline.model, version=version, replicas=baseline.replicas)
    return registry.rollouts.create(
        endpoint, baseline, candidate, plan.model_dump(mode="json"), actor
    )


def set_weight(registry: Registry, rollout: RolloutRecord, weight: int, actor: str) -> None:
    """Serve the candidate at ``weight`` percent and the baseline at the rest."""
    spec = registry.deployments.get(rollout.endpoint).spec
    baseline = rollout.baseline.model_copy(update={"weight": 100 - weight})
    candidate = rollout.candidate.model_copy(update={"weight": weight})
    others = [v for v in spec.variants if v.name not in {baseline.name, candidate.name}]
    # At 100% the baseline keeps running at 0%: a rollback is then only a weight change.
    variants = (baseline, candidate, *others)
    registry.deployments.put(spec.model_copy(update={"variants": variants}), actor)


def finish(
    registry: Registry, rollout: RolloutRecord, promote: bool, reason: str, actor: str
) -> RolloutRecord:
    """Promote (candidate alone at 100%, alias production moves) or return to the baseline."""
    spec = registry.deployments.get(rollout.endpoint).spec
    keep = (rollout.candidate if promote else rollout.baseline).model_copy(update={"weight": 100})
    involved = {rollout.baseline.name, rollout.candidate.name}
    others = [v for v in spec.variants if v.name not in involved]
    registry.deployments.put(spec.model_copy(update={"variants": (keep, *others)}), actor)
    if promote:
        registry.set_alias(rollout.model, "production", rollout.candidate.version, actor)
        status = RolloutStatus.PROMOTED
    else:
        status = RolloutStatus.ROLLED_BACK
    weight = 100 if promote else 0
    action = "promoted" if promote else "rolled_back"
    return registry.rollouts.transition(
        rollout.id, actor, action, status=status, weight=weight, reason=reason
    )


class RolloutController:
    def __init__(
        self,
        registry: Registry,
        traffic: TrafficSource,
        clock: Callable[[], float] = time.monotonic,
        predictions: PredictionSource | None = None,
        signals: SignalSource | None = None,
    ) -> None:
        self._registry = registry
        self._traffic = traffic
        self._predictions = predictions or dict
        self._signals = signals
        self._clock = clock
        self._windows: dict[int, Window] = {}

    def tick(self) -> None:
        for trigger in self._registry.policies.pending():
            self._fire(trigger)
        active = self._registry.rollouts.list(active_only=True)
        for gone in set(self._windows) - {r.id for r in active}:
            del self._windows[gone]
        for rollout in active:
            if rollout.status is RolloutStatus.PAUSED:
                self._windows.pop(rollout.id, None)  # a resumed rollout judges afresh
                continue
            self._advance(rollout, CanaryPlan.model_validate(rollout.plan))

    def _fire(self, trigger: Trigger) -> None:
        """Start the rollout a policy asks for, or record why it cannot start."""
        policy = trigger.policy
        try:
            spec = self._registry.deployments.get(policy.endpoint).spec
        except NotFound:
            reason = f"endpoint {policy.endpoint!r} is not deployed"
            self._registry.policies.fire(trigger, None, ACTOR, skip_reason=reason)
            return
        serving = [v for v in spec.variants if v.weight > 0 and v.name != spec.shadow]
        baseline = serving[0] if len(serving) == 1 else None
        if baseline is None or baseline.version == trigger.version:
            why = "it already serves that version" if baseline else "it serves several variants"
            self._registry.policies.fire(trigger, None, ACTOR, skip_reason=why)
            return
        candidate = VariantSpec(
            model=policy.model, version=trigger.version, replicas=baseline.replicas
        )
        started = self._registry.policies.fire(trigger, (baseline, candidate), ACTOR)
        if started is not None:
            logger.info("policy of %s started rollout %d", policy.model, started.id)

    def _advance(self, rollout: RolloutRecord, plan: CanaryPlan) -> None:
        now = self._clock()
        if rollout.weight == 0 and rollout.step_index == 0:
            set_weight(self._registry, rollout, plan.steps[0], ACTOR)
            reason = f"started at {plan.steps[0]}%"
            self._registry.rollouts.transition(
                rollout.id, ACTOR, "step", weight=plan.steps[0], reason=reason
            )
            self._windows[rollout.id] = self._snapshot(now)
            return
        opened = self._windows.get(rollout.id)
        if opened is None:
            self._windows[rollout.id] = self._snapshot(now)
            return
        if now - opened.started_s < plan.interval_s:
            return
        closing = self._snapshot(now)
        self._windows[rollout.id] = closing
        analysis = self._analysis(rollout, plan, opened, closing)
        progress = Progress(rollout.step_index, rollout.failed_checks)
        decision, progress = decide(plan, analysis, progress)
        self._act(rollout, decision, progress)

    def _snapshot(self, now: float) -> Window:
        return Window(now, self._traffic(), self._predictions())

    def _analysis(
        self, rollout: RolloutRecord, plan: CanaryPlan, opened: Window, closing: Window
    ) -> Analysis:
        if opened.totals is None or closing.totals is None:
            return Analysis(Verdict.INCONCLUSIVE, ("metrics unavailable",), 0, None, None)
        key = (rollout.endpoint, rollout.candidate.name)
        candidate = window(closing.totals, opened.totals).get(key, Traffic())
        gates = plan.gates
        wants_signals = gates.judges_accuracy or gates.max_input_drift_psi is not None
        signals = self._signals(rollout) if wants_signals and self._signals else None
        return analyse(gates, candidate, _drift(rollout, opened, closing), signals)

    def _act(self, rollout: RolloutRecord, decision: Decision, progress: Progress) -> None:
        logger.info("rollout %d: %s (%s)", rollout.id, decision.action, decision.reason)
        transitions = self._registry.rollouts
        if decision.action is Action.PROMOTE:
            finish(self._registry, rollout, True, decision.reason, ACTOR)
        elif decision.action is Action.ROLLBACK:
            finish(self._registry, rollout, False, decision.reason, ACTOR)
        elif decision.action is Action.STEP:
            set_weight(self._registry, rollout, decision.weight, ACTOR)
            transitions.transition(
                rollout.id, ACTOR, "step", step_index=progress.step_index,
                weight=decision.weight, reason=decision.reason,
            )  # fmt: skip
        else:
            transitions.transition(
                rollout.id, ACTOR, "held", failed_checks=progress.failed_checks,
                reason=decision.reason,
            )  # fmt: skip


def _drift(rollout: RolloutRecord, opened: Window, closing: Window) -> Drift | None:
    """The candidate's prediction drift from the baseline over the window, if both answered."""
    by_variant = {
        name: grown(closing.classes.get((rollout.endpoint, name), {}),
                    opened.classes.get((rollout.endpoint, name), {}))
        for name in (rollout.candidate.name, rollout.baseline.name)
    }  # fmt: skip
    candidate, baseline = by_variant[rollout.candidate.name], by_variant[rollout.baseline.name]
    if not sum(candidate.values()) or not sum(baseline.values()):
        return None
    return Drift(jensen_shannon(candidate, baseline), sum(candidate.values()))
