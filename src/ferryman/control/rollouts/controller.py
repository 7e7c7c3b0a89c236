"""The rollout controller: move every active rollout on by its strategy, from what it sees.

Each tick it starts the rollouts policies ask for, then for each active rollout observes
(:mod:`.observer`), asks its strategy's pure decision (canary :func:`decide`,
:mod:`.bluegreen`, :mod:`.abtest`, :mod:`.shadow`) and acts through
:mod:`.steering`: the endpoint's deployment, the ``production`` alias and the
rollout's new state change in one transaction with an event that carries the figures the
decision was made on.

Blue-green, A/B tests and shadows first warm the candidate's pool at 0% and act only once
it is ready. Windows, warm-ups, bakes and test durations are measured on the monotonic
clock and live in memory: after a restart they start afresh, so a restart can delay a
promotion but never hasten one (RELIABILITY F5, F9). An A/B test's sample counts are
persisted, so it keeps its data across a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ferryman.control.rollouts import abtest, shadow
from ferryman.control.rollouts.bluegreen import bake, warm
from ferryman.control.rollouts.gates import Action, CanaryPlan, Decision, Progress, decide
from ferryman.control.rollouts.observer import Observer, Snapshot, Sources, totals_of
from ferryman.control.rollouts.plans import (
    ABTestPlan,
    BlueGreenPlan,
    ShadowPlan,
    Strategy,
    parse_plan,
    parse_strategy,
)
from ferryman.control.rollouts.state import Phase, RolloutState
from ferryman.control.rollouts.steering import change_for, clients_refused, end, move_to
from ferryman.errors import FerrymanError, NotFound
from ferryman.registry import (
    PRODUCTION,
    PolicyRecord,
    Registry,
    RolloutRecord,
    RolloutStatus,
    Trigger,
    VariantSpec,
)
from ferryman.types import Clock

logger = logging.getLogger(__name__)

ACTOR = "rollouts"
ENDS = {
    Action.PROMOTE: RolloutStatus.PROMOTED,
    Action.ROLLBACK: RolloutStatus.ROLLED_BACK,
    Action.COMPLETE: RolloutStatus.COMPLETED,
}


@dataclass
class Memory:
    """A rollout's snapshots in this process: where its phase began and its window opened."""

    phase: Phase | None
    began: Snapshot
    opened: Snapshot


Step = Callable[[RolloutRecord, Any], None]
"""What a strategy does in one phase: (rollout, its plan) → acts. The plan's type is the one
``parse_plan`` gives for the rollout's strategy, which the table below is keyed by."""


class RolloutController:
    def __init__(self, registry: Registry, sources: Sources, clock: Clock = time.monotonic) -> None:
        self._registry = registry
        self._observer = Observer(sources)
        self._clock = clock
        self._memory: dict[int, Memory] = {}
        self._steps: dict[tuple[Strategy, Phase | None], Step] = {
            (Strategy.CANARY, None): self._canary,
            (Strategy.BLUE_GREEN, Phase.WARMING): self._warm,
            (Strategy.BLUE_GREEN, Phase.BAKING): self._bake,
            (Strategy.AB_TEST, Phase.WARMING): self._warm,
            (Strategy.AB_TEST, Phase.RUNNING): self._test,
            (Strategy.SHADOW, Phase.WARMING): self._warm,
            (Strategy.SHADOW, Phase.SHADOWING): self._shadow,
            (Strategy.SHADOW, Phase.CANARY): self._shadow_canary,
        }
        """Each strategy's phases and what the controller does in each."""

    def tick(self) -> None:
        for trigger in self._registry.policies.pending():
            self._fire(trigger)
        active = self._registry.rollouts.list(active_only=True)
        for gone in set(self._memory) - {r.id for r in active}:
            del self._memory[gone]
        for rollout in active:
            if rollout.status is RolloutStatus.PAUSED:
                self._memory.pop(rollout.id, None)  # a resumed rollout judges afresh
                continue
            try:
                self._advance(rollout)
            except NotFound as exc:  # the endpoint was undeployed under it
                self._registry.rollouts.transition(
                    rollout.id, ACTOR, "aborted", status=RolloutStatus.ABORTED, reason=exc.message
                )
            except FerrymanError as exc:  # e.g. ended by hand meanwhile: the others go on
                logger.warning("rollout %d: %s", rollout.id, exc.message)

    def _fire(self, trigger: Trigger) -> None:
        """Start the rollout a policy asks for, or record why it cannot start: its endpoint is
        not deployed, its plan is bad, the serving version's clients could not call it, or
        its offline metric falls short of the policy's offline gate."""
        policy = trigger.policy
        try:
            spec = self._registry.deployments.get(policy.endpoint).spec
        except NotFound:
            reason = f"endpoint {policy.endpoint!r} is not deployed"
            self._registry.policies.fire(trigger, None, ACTOR, skip_reason=reason)
            return
        try:
            strategy = parse_strategy(policy.strategy)
            parse_plan(strategy, policy.plan)
            change, state = change_for(spec, trigger.version, strategy)
            refused = clients_refused(self._registry, change[0], trigger.version)
            held = self._offline_held(policy, change[0], trigger.version)
        except FerrymanError as exc:
            self._registry.policies.fire(trigger, None, ACTOR, skip_reason=exc.message)
            return
        if refused is not None or held is not None:
            why = f"not rolled out: {refused}" if refused else f"held by the offline gate: {held}"
            self._registry.policies.fire(trigger, None, ACTOR, skip_reason=why)
            return
        started = self._registry.policies.fire(trigger, change, ACTOR, state=state)
        if started is not None:
            logger.info("policy of %s started rollout %d", policy.model, started.id)

    def _offline_held(
        self, policy: PolicyRecord, baseline: VariantSpec, version: int
    ) -> str | None:
        """Why the policy's offline gate holds ``version`` back, or None (no gate, or met).
        Production is the model's ``production`` alias, or else the endpoint's baseline."""
        gate = policy.offline_gate
        if gate is None:
            return None
        candidate = self._registry.get_version(baseline.model, version)
        try:
            production = self._registry.get_version(baseline.model, PRODUCTION)
        except NotFound:
            production = self._registry.get_version(baseline.model, baseline.version)
        return gate.held((version, candidate.metrics), (production.version, production.metrics))

    def _advance(self, rollout: RolloutRecord) -> None:
        strategy = Strategy(rollout.strategy)
        phase = RolloutState.of(rollout.state).phase
        step = self._steps.get((strategy, phase))
        if step is None:
            logger.warning("rollout %d: unknown phase %r of %s", rollout.id, phase, strategy)
            return
        step(rollout, parse_plan(strategy, rollout.plan))

    # -- canary ------------------------------------------------------------------------------

    def _canary(self, rollout: RolloutRecord, plan: CanaryPlan) -> None:
        if rollout.weight == 0 and rollout.step_index == 0:
            first = plan.steps[0]
            move_to(self._registry, rollout, first, ACTOR, reason=f"started at {first}%")
            self._remember(rollout)
            return
        due = self._due(rollout, plan.interval_s)
        if due is None:
            return
        opened, closing, _ = due
        analysis = self._observer.analysis(rollout, plan.gates, opened, closing)
        progress = Progress(rollout.step_index, rollout.failed_checks)
        decision, progress = decide(plan, analysis, progress)
        details = {"figures": analysis.figures()}
        if decision.action is Action.STEP:
            move_to(
                self._registry, rollout, decision.weight, ACTOR, details,
                step_index=progress.step_index, reason=decision.reason,
            )  # fmt: skip
        else:
            self._conclude(rollout, decision, details, failed_checks=progress.failed_checks)

    # -- warming (blue-green, A/B test, shadow) ----------------------------------------------

    def _warm(self, rollout: RolloutRecord, plan: BlueGreenPlan | ABTestPlan | ShadowPlan) -> None:
        strategy = Strategy(rollout.strategy)
        spec = self._registry.deployments.get(rollout.endpoint).spec
        wanted = RolloutState.of(rollout.state).pool_replicas or max(
            1, spec.autoscaling.min_replicas if spec.autoscaling else rollout.candidate.replicas
        )
        if rollout.candidate.name not in {v.name for v in spec.variants}:
            if spec.autoscaling and strategy is Strategy.BLUE_GREEN:
                # The new pool as large as the old one is now, and both held there until
                # the end, so the switch and an instant rollback land on warm capacity.
                wanted = max(wanted, self._observer.ready(rollout.endpoint, rollout.baseline))
                wanted = min(wanted, spec.autoscaling.max_replicas)
                state = RolloutState.of(rollout.state).with_(pool_replicas=wanted)
                rollout = rollout.model_copy(update={"state": state.stored()})
            reason = f"warming {wanted} replicas of {rollout.candidate.name} at 0%"
            move_to(self._registry, rollout, 0, ACTOR, action="warming", reason=reason,
                    state=rollout.state)  # fmt: skip
            self._remember(rollout)  # the warm-up time counts from here
            return
        memory = self._memory.get(rollout.id) or self._remember(rollout)
        pool = self._observer.pool(rollout, wanted)
        decision = warm(plan.warmup_timeout_s, pool, self._clock() - memory.began.at_s)
        details = {"pool": pool.figures()}
        if decision.action is Action.ROLLBACK:
            end(self._registry, rollout, RolloutStatus.ROLLED_BACK,
                reason=decision.reason, actor=ACTOR, details=details)  # fmt: skip
        elif decision.action is Action.STEP:
            self._ready(rollout, plan, decision.reason, details)

    def _ready(
        self,
        rollout: RolloutRecord,
        plan: BlueGreenPlan | ABTestPlan | ShadowPlan,
        why: str,
        details: dict[str, Any],
    ) -> None:
        """The pool is ready: blue-green switches, an A/B test splits, a shadow mirrors."""
        state = RolloutState.of(rollout.state)
        if isinstance(plan, BlueGreenPlan):
            state, weight = state.with_(phase=Phase.BAKING), 100
            action, reason = "switched", f"{why}: switched"
        elif isinstance(plan, ABTestPlan):
            began = totals_of(rollout, self._observer.snapshot(self._clock()))
            started_at = datetime.now(UTC).isoformat()
            state = state.with_(phase=Phase.RUNNING, began=began, started_at=started_at)
            weight, action = plan.split, "split"
            reason = f"{why}: {plan.split}% of users by {plan.sticky_header} to the candidate"
        else:
            state, weight, action = state.with_(phase=Phase.SHADOWING), 0, "mirroring"
            reason = f"{why}: every request mirrored to it, never served"
        ready = rollout.model_copy(update={"state": state.stored()})
        move_to(self._registry, ready, weight, ACTOR, details,
                action=action, state=state.stored(), reason=reason)  # fmt: skip

    # -- blue-green --------------------------------------------------------------------------

    def _bake(self, rollout: RolloutRecord, plan: BlueGreenPlan) -> None:
        due = self._due(rollout, plan.interval_s)
        if due is None:
            return
        opened, closing, memory = due
        analysis = self._observer.analysis(rollout, plan.gates, opened, closing)
        baked_s = closing.at_s - memory.began.at_s
        whole = None
        if baked_s >= plan.bake_s:
            whole = self._observer.analysis(rollout, plan.gates, memory.began, closing)
        decision, failed = bake(plan, baked_s, analysis, whole, rollout.failed_checks)
        details: dict[str, Any] = {"figures": analysis.figures()}
        if whole is not None:
            details["bake"] = whole.figures()
        self._conclude(rollout, decision, details, failed_checks=failed)

    # -- A/B test ----------------------------------------------------------------------------

    def _test(self, rollout: RolloutRecord, plan: ABTestPlan) -> None:
        due = self._due(rollout, plan.interval_s)
        if due is None:
            return
        opened, closing, memory = due
        limit = plan.max_client_error_rise
        refused = None if limit is None else self._observer.clients_refused(
            rollout, limit, opened, closing
        )  # fmt: skip
        if refused is not None:
            why = f"ended, rolled back: {refused}"
            self._conclude(rollout, Decision(Action.ROLLBACK, 0, why), {"refused": refused})
            return
        state = RolloutState.of(rollout.state)
        if plan.metric == "accuracy":
            since = state.started_at
            started = datetime.fromisoformat(since) if since is not None else None
            arms = self._observer.accuracy_arms(rollout, started)
        else:
            found = self._observer.success_arms(rollout, state.began or {}, closing)
            if found is None:
                reason = "inconclusive: metrics unavailable"
                self._registry.rollouts.transition(rollout.id, ACTOR, "held", reason=reason)
                return
            arms = found
        look = abtest.Look(arms[0], arms[1], closing.at_s - memory.began.at_s)
        names = (rollout.baseline.name, rollout.candidate.name)
        decision, report = abtest.judge(plan, look, names)
        self._conclude(
            rollout, decision, {"test": report}, state=state.with_(result=report).stored()
        )

    # -- shadow ------------------------------------------------------------------------------

    def _shadow(self, rollout: RolloutRecord, plan: ShadowPlan) -> None:
        due = self._due(rollout, plan.interval_s, with_replicas=True)
        if due is None:
            return
        _, closing, memory = due
        mirror = self._observer.mirror(rollout, memory.began, closing)
        elapsed_s = closing.at_s - memory.began.at_s
        decision, report = shadow.judge(plan, mirror, elapsed_s)
        state = RolloutState.of(rollout.state).with_(report=report)
        if decision.action is Action.STEP:
            state = state.with_(phase=Phase.CANARY)
            canary = rollout.model_copy(update={"state": state.stored()})
            move_to(self._registry, canary, decision.weight, ACTOR, {"report": report},
                    state=state.stored(), step_index=0, reason=decision.reason)  # fmt: skip
            return
        self._conclude(rollout, decision, {"report": report}, state=state.stored())

    def _shadow_canary(self, rollout: RolloutRecord, plan: ShadowPlan) -> None:
        """A shadow that agreed well enough goes on as a canary, when its plan says so."""
        if plan.canary is None:
            logger.warning("rollout %d: a canary phase with no canary plan", rollout.id)
            return
        self._canary(rollout, plan.canary)

    # -- shared ------------------------------------------------------------------------------

    def _conclude(
        self, rollout: RolloutRecord, decision: Decision, details: dict[str, Any], **changes: Any
    ) -> None:
        """End the rollout (promote, roll back, complete) or record that it holds."""
        logger.info("rollout %d: %s (%s)", rollout.id, decision.action, decision.reason)
        status = ENDS.get(decision.action)
        if status is not None:
            end(self._registry, rollout, status, reason=decision.reason, actor=ACTOR,
                details=details, state=changes.get("state"),
                failed_checks=changes.get("failed_checks"))  # fmt: skip
            return
        self._registry.rollouts.transition(
            rollout.id, ACTOR, "held", details, reason=decision.reason, **changes
        )

    def _remember(self, rollout: RolloutRecord) -> Memory:
        """Begin the rollout's phase (and its first window) now."""
        snapshot = self._snapshot(rollout)
        memory = Memory(RolloutState.of(rollout.state).phase, snapshot, snapshot)
        self._memory[rollout.id] = memory
        return memory

    def _due(
        self, rollout: RolloutRecord, interval_s: float, with_replicas: bool = False
    ) -> tuple[Snapshot, Snapshot, Memory] | None:
        """(opened, closing, memory) once a window of ``interval_s`` has passed, else None.

        A rollout seen for the first time in this phase begins its phase and first window.
        """
        memory = self._memory.get(rollout.id)
        if memory is None or memory.phase != RolloutState.of(rollout.state).phase:
            self._remember(rollout)
            return None
        if self._clock() - memory.opened.at_s < interval_s:
            return None
        opened, memory.opened = memory.opened, self._snapshot(rollout, with_replicas)
        return opened, memory.opened, memory

    def _snapshot(self, rollout: RolloutRecord, with_replicas: bool | None = None) -> Snapshot:
        mirrors = rollout.strategy == Strategy.SHADOW if with_replicas is None else with_replicas
        return self._observer.snapshot(self._clock(), with_replicas=mirrors)
