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
from ferryman.control.rollouts.steering import (
    BAKING,
    CANARY,
    PHASE,
    POOL_REPLICAS,
    RUNNING,
    SHADOWING,
    WARMING,
    change_for,
    end,
    move_to,
)
from ferryman.errors import FerrymanError, NotFound
from ferryman.registry import Registry, RolloutRecord, RolloutStatus, Trigger
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

    phase: str
    began: Snapshot
    opened: Snapshot


class RolloutController:
    def __init__(self, registry: Registry, sources: Sources, clock: Clock = time.monotonic) -> None:
        self._registry = registry
        self._observer = Observer(sources)
        self._clock = clock
        self._memory: dict[int, Memory] = {}

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
        """Start the rollout a policy asks for, or record why it cannot start."""
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
        except FerrymanError as exc:
            self._registry.policies.fire(trigger, None, ACTOR, skip_reason=exc.message)
            return
        started = self._registry.policies.fire(trigger, change, ACTOR, state=state)
        if started is not None:
            logger.info("policy of %s started rollout %d", policy.model, started.id)

    def _advance(self, rollout: RolloutRecord) -> None:
        strategy = Strategy(rollout.strategy)
        plan = parse_plan(strategy, rollout.plan)
        phase = rollout.state.get(PHASE)
        if isinstance(plan, CanaryPlan):
            self._canary(rollout, plan)
        elif phase == WARMING:
            self._warm(rollout, strategy, plan.warmup_timeout_s)
        elif isinstance(plan, BlueGreenPlan) and phase == BAKING:
            self._bake(rollout, plan)
        elif isinstance(plan, ABTestPlan) and phase == RUNNING:
            self._test(rollout, plan)
        elif isinstance(plan, ShadowPlan) and phase == SHADOWING:
            self._shadow(rollout, plan)
        elif isinstance(plan, ShadowPlan) and phase == CANARY and plan.canary is not None:
            self._canary(rollout, plan.canary)
        else:
            logger.warning("rollout %d: unknown phase %r of %s", rollout.id, phase, strategy)

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

    def _warm(self, rollout: RolloutRecord, strategy: Strategy, timeout_s: float) -> None:
        spec = self._registry.deployments.get(rollout.endpoint).spec
        wanted = rollout.state.get(POOL_REPLICAS) or max(
            1, spec.autoscaling.min_replicas if spec.autoscaling else rollout.candidate.replicas
        )
        if rollout.candidate.name not in {v.name for v in spec.variants}:
            if spec.autoscaling and strategy is Strategy.BLUE_GREEN:
                # The new pool as large as the old one is now, and both held there until
                # the end, so the switch and an instant rollback land on warm capacity.
                wanted = max(wanted, self._observer.ready(rollout.endpoint, rollout.baseline))
                wanted = min(wanted, spec.autoscaling.max_replicas)
                state = {**rollout.state, POOL_REPLICAS: wanted}
                rollout = rollout.model_copy(update={"state": state})
            reason = f"warming {wanted} replicas of {rollout.candidate.name} at 0%"
            move_to(self._registry, rollout, 0, ACTOR, action="warming", reason=reason,
                    state=rollout.state)  # fmt: skip
            self._remember(rollout)  # the warm-up time counts from here
            return
        memory = self._memory.get(rollout.id) or self._remember(rollout)
        pool = self._observer.pool(rollout, wanted)
        decision = warm(timeout_s, pool, self._clock() - memory.began.at_s)
        details = {"pool": pool.figures()}
        if decision.action is Action.ROLLBACK:
            end(self._registry, rollout, RolloutStatus.ROLLED_BACK,
                reason=decision.reason, actor=ACTOR, details=details)  # fmt: skip
        elif decision.action is Action.STEP:
            self._ready(rollout, strategy, decision.reason, details)

    def _ready(
        self, rollout: RolloutRecord, strategy: Strategy, why: str, details: dict[str, Any]
    ) -> None:
        """The pool is ready: blue-green switches, an A/B test splits, a shadow mirrors."""
        plan = parse_plan(strategy, rollout.plan)
        state: dict[str, Any]
        if isinstance(plan, BlueGreenPlan):
            state, weight, action, reason = {PHASE: BAKING}, 100, "switched", f"{why}: switched"
        elif isinstance(plan, ABTestPlan):
            began = totals_of(rollout, self._observer.snapshot(self._clock()))
            started_at = datetime.now(UTC).isoformat()
            state = {PHASE: RUNNING, "began": began, "started_at": started_at}
            weight, action = plan.split, "split"
            reason = f"{why}: {plan.split}% of users by {plan.sticky_header} to the candidate"
        else:
            state, weight, action = {PHASE: SHADOWING}, 0, "mirroring"
            reason = f"{why}: every request mirrored to it, never served"
        state = {**rollout.state, **state}
        ready = rollout.model_copy(update={"state": state})
        move_to(self._registry, ready, weight, ACTOR, details,
                action=action, state=state, reason=reason)  # fmt: skip

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
        _, closing, memory = due
        if plan.metric == "accuracy":
            since = rollout.state.get("started_at")
            started = datetime.fromisoformat(since) if isinstance(since, str) else None
            arms = self._observer.accuracy_arms(rollout, started)
        else:
            found = self._observer.success_arms(rollout, rollout.state.get("began", {}), closing)
            if found is None:
                reason = "inconclusive: metrics unavailable"
                self._registry.rollouts.transition(rollout.id, ACTOR, "held", reason=reason)
                return
            arms = found
        look = abtest.Look(arms[0], arms[1], closing.at_s - memory.began.at_s)
        names = (rollout.baseline.name, rollout.candidate.name)
        decision, report = abtest.judge(plan, look, names)
        state = {**rollout.state, "result": report}
        self._conclude(rollout, decision, {"test": report}, state=state)

    # -- shadow ------------------------------------------------------------------------------

    def _shadow(self, rollout: RolloutRecord, plan: ShadowPlan) -> None:
        due = self._due(rollout, plan.interval_s, with_replicas=True)
        if due is None:
            return
        _, closing, memory = due
        mirror = self._observer.mirror(rollout, memory.began, closing)
        elapsed_s = closing.at_s - memory.began.at_s
        decision, report = shadow.judge(plan, mirror, elapsed_s)
        state = {**rollout.state, "report": report}
        if decision.action is Action.STEP:
            state[PHASE] = CANARY
            canary = rollout.model_copy(update={"state": state})
            move_to(self._registry, canary, decision.weight, ACTOR, {"report": report},
                    state=state, step_index=0, reason=decision.reason)  # fmt: skip
            return
        self._conclude(rollout, decision, {"report": report}, state=state)

    # -- shared ------------------------------------------------------------------------------

    def _conclude(
        self, rollout: RolloutRecord, decision: Decision, details: dict[str, Any], **changes: Any
    ) -> None:
        """End the rollout (promote, roll back, complete) or record that it holds."""
        logger.info("rollout %d: %s (%s)", rollout.id, decision.action, decision.reason)
        status = ENDS.get(decision.action)
        if status is not None:
            state = changes.get("state")
            end(self._registry, rollout, status, reason=decision.reason, actor=ACTOR,
                details=details, state=state)  # fmt: skip
            return
        self._registry.rollouts.transition(
            rollout.id, ACTOR, "held", details, reason=decision.reason, **changes
        )

    def _remember(self, rollout: RolloutRecord) -> Memory:
        """Begin the rollout's phase (and its first window) now."""
        snapshot = self._snapshot(rollout)
        memory = Memory(str(rollout.state.get(PHASE, "")), snapshot, snapshot)
        self._memory[rollout.id] = memory
        return memory

    def _due(
        self, rollout: RolloutRecord, interval_s: float, with_replicas: bool = False
    ) -> tuple[Snapshot, Snapshot, Memory] | None:
        """(opened, closing, memory) once a window of ``interval_s`` has passed, else None.

        A rollout seen for the first time in this phase begins its phase and first window.
        """
        memory = self._memory.get(rollout.id)
        if memory is None or memory.phase != str(rollout.state.get(PHASE, "")):
            self._remember(rollout)
            return None
        if self._clock() - memory.opened.at_s < interval_s:
            return None
        opened, memory.opened = memory.opened, self._snapshot(rollout, with_replicas)
        return opened, memory.opened, memory

    def _snapshot(self, rollout: RolloutRecord, with_replicas: bool | None = None) -> Snapshot:
        mirrors = rollout.strategy == Strategy.SHADOW if with_replicas is None else with_replicas
        return self._observer.snapshot(self._clock(), with_replicas=mirrors)
