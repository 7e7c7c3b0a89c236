"""Shadow decisions: how well the mirrored candidate agrees with the baseline, and what next.

The gateway mirrors every inference request to the shadow variant and counts how its answer
compares with the one the client got (:mod:`ferryman.gateway.comparison`): equal,
close and same_argmax agree; different and status_differs do not; error means the shadow
failed (transport, timeout); primary_failed and dropped are not compared. The candidate's
replicas add its own requests, 5xx answers and latency.

:func:`judge` reports while the shadow runs, and at ``duration_s`` ends with the report
(COMPLETE) — or, when the plan names a canary, continues into it (STEP) if agreement is at
least ``min_agreement`` over at least ``min_compared`` answers. Too few compared answers
hold (never continue unjudged, RELIABILITY Z5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.gates import Action, Decision
from ferryman.control.rollouts.plans import ShadowPlan

AGREE = ("equal", "close", "same_argmax")
DISAGREE = ("different", "status_differs")


@dataclass(frozen=True)
class Mirror:
    """What the shadow did since it began: comparison outcomes, and its replicas' traffic."""

    outcomes: dict[str, float] = field(default_factory=dict)
    replicas: Traffic = field(default_factory=Traffic)

    @property
    def compared(self) -> float:
        return sum(self.outcomes.get(name, 0.0) for name in (*AGREE, *DISAGREE))

    @property
    def agreement(self) -> float | None:
        compared = self.compared
        agreed = sum(self.outcomes.get(name, 0.0) for name in AGREE)
        return agreed / compared if compared else None

    def report(self) -> dict[str, Any]:
        p99_s = self.replicas.quantile_s(0.99)
        agreement = self.agreement
        return {
            "compared": round(self.compared),
            "agreement": None if agreement is None else round(agreement, 4),
            "outcomes": {name: round(count) for name, count in sorted(self.outcomes.items())},
            "shadow_errors": round(self.outcomes.get("error", 0.0)),
            "requests": round(self.replicas.requests),
            "server_errors": round(self.replicas.errors),
            "client_errors": round(self.replicas.client_errors),
            "p99_ms": None if p99_s is None else round(p99_s * 1000, 1),
        }


def judge(plan: ShadowPlan, mirror: Mirror, elapsed_s: float) -> tuple[Decision, dict[str, Any]]:
    """The action after this look, and the report to record with it."""
    report = {**mirror.report(), "elapsed_s": round(elapsed_s, 1)}
    agreement = mirror.agreement
    seen = (
        f"{mirror.compared:.0f} compared, agreement "
        f"{'-' if agreement is None else f'{agreement:.3f}'}"
    )
    if elapsed_s < plan.duration_s:
        return Decision(Action.HOLD, 0, f"shadowing: {seen}"), report
    if plan.canary is None:
        return Decision(Action.COMPLETE, 0, f"shadowed {plan.duration_s:g} s: {seen}"), report
    if agreement is None or mirror.compared < plan.min_compared:
        why = f"inconclusive: {mirror.compared:.0f} compared < {plan.min_compared}"
        return Decision(Action.HOLD, 0, why), report
    if agreement < plan.min_agreement:
        why = f"agreement {agreement:.3f} < {plan.min_agreement}: not continued into a canary"
        return Decision(Action.COMPLETE, 0, why), report
    first = plan.canary.steps[0]
    why = f"agreement {agreement:.3f} ≥ {plan.min_agreement} over {seen}: canary at {first}%"
    return Decision(Action.STEP, first, why), report
