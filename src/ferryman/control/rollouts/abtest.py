"""A/B test decisions: look at both arms, and end when one is significantly better or time
is up. Pure: the arms' counts and the elapsed time (monotonic) come in.

Each look tests the candidate's proportion against the baseline's, two-sided
(:mod:`ferryman.control.analysis.significance`), once both arms hold ``min_samples``. The test may
look up to ``plan.looks`` times (one per interval until ``max_duration_s``), so each look
uses ``alpha / looks`` (Bonferroni): looking often cannot manufacture a winner out of
noise. The report says the sample size each arm needs to detect ``min_effect`` at that
level and power, so a test that ran out of time says how much more data it wanted.

The end, for :func:`judge`: a significant difference names the winner; with
``promote_winner`` a winning candidate is promoted (PROMOTE) and a winning baseline stays
(ROLLBACK); without it, or with no winner by ``max_duration_s``, the test ends with its
report and the baseline alone (COMPLETE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferryman.control.analysis.significance import Arm, compare_proportions, required_per_arm
from ferryman.control.rollouts.gates import Action, Decision
from ferryman.control.rollouts.plans import ABTestPlan


@dataclass(frozen=True)
class Look:
    """Both arms' counts since the test began, and how long it has run."""

    baseline: Arm
    candidate: Arm
    elapsed_s: float


def judge(plan: ABTestPlan, look: Look, names: tuple[str, str]) -> tuple[Decision, dict[str, Any]]:
    """The action after this look and its report; ``names`` = (baseline, candidate)."""
    alpha = plan.alpha / plan.looks
    rate = look.baseline.rate
    required = required_per_arm(0.5 if rate is None else rate, plan.min_effect, alpha, plan.power)
    report: dict[str, Any] = {
        "metric": plan.metric, "alpha": plan.alpha, "alpha_per_look": alpha,
        "required_per_arm": required, "min_effect": plan.min_effect,
        "elapsed_s": round(look.elapsed_s, 1),
        "baseline": _arm(names[0], look.baseline), "candidate": _arm(names[1], look.candidate),
        "test": None, "statistic": None, "p_value": None, "winner": None,
    }  # fmt: skip
    is_over = look.elapsed_s >= plan.max_duration_s
    smaller = min(look.baseline.trials, look.candidate.trials)
    if smaller < plan.min_samples:
        seen = f"{smaller:.0f} samples in the smaller arm < {plan.min_samples}"
        return _hold_or_end(plan, is_over, seen, report)
    result = compare_proportions(look.baseline, look.candidate)
    report.update(test=result.test, statistic=round(result.statistic, 4), p_value=result.p_value)
    if result.p_value >= alpha:
        seen = f"p = {result.p_value:.3g} ≥ {alpha:.3g} (n = {smaller:.0f} of {required} needed)"
        return _hold_or_end(plan, is_over, seen, report)
    better, worse = (names[1], names[0]) if result.difference > 0 else (names[0], names[1])
    report["winner"] = better
    reason = (
        f"{better} wins on {plan.metric}: {_rates(report)}, p = {result.p_value:.3g} < "
        f"{alpha:.3g} ({result.test} test)"
    )
    if not plan.promote_winner:
        kept = f"; reported only (promote_winner is off), {names[0]} serves on"
        return Decision(Action.COMPLETE, 0, reason + kept), report
    if better == names[1]:
        return Decision(Action.PROMOTE, 100, reason), report
    return Decision(Action.ROLLBACK, 0, f"{reason}; {worse} is rolled back"), report


def _hold_or_end(
    plan: ABTestPlan, is_over: bool, seen: str, report: dict[str, Any]
) -> tuple[Decision, dict[str, Any]]:
    if is_over:
        reason = f"no winner after {plan.max_duration_s:g} s: {seen}; {_rates(report)}"
        return Decision(Action.COMPLETE, 0, reason), report
    return Decision(Action.HOLD, plan.split, f"testing: {seen}"), report


def _arm(name: str, arm: Arm) -> dict[str, Any]:
    rate = arm.rate
    return {"variant": name, "samples": round(arm.trials), "successes": round(arm.successes),
            "rate": None if rate is None else round(rate, 4)}  # fmt: skip


def _rates(report: dict[str, Any]) -> str:
    def one(arm: dict[str, Any]) -> str:
        rate = "-" if arm["rate"] is None else f"{arm['rate']:.3f}"
        return f"{arm['variant']} {rate} (n = {arm['samples']})"

    return f"{one(report['baseline'])} vs {one(report['candidate'])}"
