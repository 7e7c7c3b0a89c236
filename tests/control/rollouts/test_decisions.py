"""The pure decisions of blue-green, A/B tests and shadows: state in, decision out, no clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferryman.control.analysis.significance import Arm
from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.abtest import Look, judge
from ferryman.control.rollouts.bluegreen import Pool, bake, warm
from ferryman.control.rollouts.gates import Action, Analysis, Gates, Verdict, analyse
from ferryman.control.rollouts.plans import (
    ABTestPlan,
    BlueGreenPlan,
    ShadowPlan,
    Strategy,
    parse_plan,
    parse_strategy,
)
from ferryman.control.rollouts.shadow import Mirror
from ferryman.control.rollouts.shadow import judge as judge_shadow
from ferryman.errors import InvalidInput

NAMES = ("v1", "v2")


def passing(requests: float = 100) -> Analysis:
    return analyse(
        Gates(min_requests=10), Traffic(requests, 0, {0.01: requests, math.inf: requests})
    )


def failing() -> Analysis:
    return analyse(Gates(min_requests=10), Traffic(100, 30, {0.01: 100, math.inf: 100}))


def no_data() -> Analysis:
    return analyse(Gates(min_requests=10), Traffic())


# -- blue-green ------------------------------------------------------------------------------


def test_warming_switches_only_to_a_whole_ready_pool() -> None:
    assert warm(60, Pool(wanted=2, ready=1), waited_s=10).action is Action.HOLD
    switch = warm(60, Pool(wanted=2, ready=2), waited_s=10)
    assert (switch.action, switch.weight) == (Action.STEP, 100)


def test_a_pool_that_fails_to_load_or_is_late_is_rolled_back_having_served_nothing() -> None:
    failed = warm(60, Pool(wanted=2, ready=1, failures=1), waited_s=1)
    assert (failed.action, failed.weight) == (Action.ROLLBACK, 0)
    assert "failed to load" in failed.reason
    late = warm(60, Pool(wanted=2, ready=1), waited_s=60)
    assert late.action is Action.ROLLBACK
    assert "not ready after 60 s (1/2 replicas)" in late.reason


def test_a_bake_holds_until_its_time_then_promotes_on_the_whole_bake() -> None:
    plan = BlueGreenPlan(bake_s=60, interval_s=10)
    decision, failed = bake(plan, 30, passing(), None, 0)
    assert (decision.action, decision.weight, failed) == (Action.HOLD, 100, 0)
    assert decision.reason.startswith("baking: 30/60 s, gates met")
    decision, _ = bake(plan, 60, passing(), passing(600), 0)
    assert decision.action is Action.PROMOTE
    assert "600 requests" in decision.reason


def test_a_failed_gate_in_the_bake_switches_back_at_once() -> None:
    decision, failed = bake(BlueGreenPlan(), 10, failing(), None, 0)
    assert (decision.action, decision.weight, failed) == (Action.ROLLBACK, 0, 1)
    assert decision.reason.startswith("switched back: success rate 0.700")
    patient = BlueGreenPlan(threshold=2)
    decision, failed = bake(patient, 10, failing(), None, 0)
    assert (decision.action, failed) == (Action.HOLD, 1)


def test_an_unjudged_bake_never_promotes() -> None:
    """Z5: past the bake time with no data (or metrics down) the old pool stays and it holds."""
    plan = BlueGreenPlan(bake_s=60)
    for whole in (None, no_data()):
        decision, _ = bake(plan, 600, no_data(), whole, 0)
        assert decision.action is Action.HOLD
        assert decision.reason.startswith("inconclusive over the bake")


# -- A/B test --------------------------------------------------------------------------------


def ab(**changes: object) -> ABTestPlan:
    return ABTestPlan.model_validate({"interval_s": 60, "max_duration_s": 600, **changes})


def test_ninety_against_eighty_percent_the_candidate_loses() -> None:
    """The known answer: 0.90 vs 0.80 with 2,000 each — B loses, p < 0.001."""
    look = Look(Arm(2000, 1800), Arm(2000, 1600), elapsed_s=120)
    decision, report = judge(ab(), look, NAMES)
    assert decision.action is Action.COMPLETE  # promote_winner is off: report only
    assert report["winner"] == "v1"
    assert report["test"] == "z"
    assert report["p_value"] < 0.001
    assert report["statistic"] == pytest.approx(-8.856, abs=1e-3)
    assert report["baseline"] == {"variant": "v1", "samples": 2000, "successes": 1800,
                                  "rate": 0.9}  # fmt: skip
    assert report["candidate"]["rate"] == 0.8
    assert report["alpha_per_look"] == pytest.approx(0.005)  # 0.05 over 10 looks
    assert report["required_per_arm"] > 0
    assert "v1 wins on success_rate" in decision.reason
    assert "reported only" in decision.reason
    decision, _ = judge(ab(promote_winner=True), look, NAMES)
    assert (decision.action, decision.weight) == (Action.ROLLBACK, 0)


def test_a_better_candidate_is_promoted_only_when_asked() -> None:
    look = Look(Arm(2000, 1600), Arm(2000, 1800), elapsed_s=60)
    assert judge(ab(promote_winner=True), look, NAMES)[0].action is Action.PROMOTE
    assert judge(ab(), look, NAMES)[0].action is Action.COMPLETE


def test_equal_rates_run_to_the_maximum_duration_and_end_without_a_winner() -> None:
    look = Look(Arm(2000, 1800), Arm(2000, 1800), elapsed_s=300)
    decision, report = judge(ab(), look, NAMES)
    assert decision.action is Action.HOLD
    assert decision.weight == 50
    over = Look(look.baseline, look.candidate, elapsed_s=600)
    decision, report = judge(ab(promote_winner=True), over, NAMES)
    assert decision.action is Action.COMPLETE
    assert report["winner"] is None
    assert decision.reason.startswith("no winner after 600 s: p = 1")


def test_too_few_samples_are_not_tested() -> None:
    look = Look(Arm(5000, 4500), Arm(50, 10), elapsed_s=60)
    decision, report = judge(ab(min_samples=100), look, NAMES)
    assert decision.action is Action.HOLD
    assert decision.reason == "testing: 50 samples in the smaller arm < 100"
    assert report["p_value"] is None


def test_looking_every_window_does_not_make_winners_of_equal_arms() -> None:
    """Ten looks at two arms that are the same, 1,000 simulated tests: the share that names
    a winner stays within alpha (Bonferroni over the looks), where testing each look at
    alpha would name one far more often."""
    plan = ab(alpha=0.05, min_samples=50)
    generator = np.random.default_rng(11)
    corrected = naive = 0
    for _ in range(1000):
        base = cand = 0
        seen_naive = seen_corrected = False
        for look in range(1, plan.looks + 1):
            base += generator.binomial(100, 0.9)
            cand += generator.binomial(100, 0.9)
            arms = Look(Arm(100 * look, base), Arm(100 * look, cand), elapsed_s=60.0 * look)
            decision, report = judge(plan, arms, NAMES)
            seen_naive |= report["p_value"] is not None and report["p_value"] < plan.alpha
            seen_corrected |= report["winner"] is not None
            if decision.action is not Action.HOLD:
                break
        naive += seen_naive
        corrected += seen_corrected
    assert corrected / 1000 <= 0.05
    assert naive / 1000 > 0.1  # why the correction is there


# -- shadow ----------------------------------------------------------------------------------


def mirror(agree: float, disagree: float = 0, errors: float = 0) -> Mirror:
    outcomes = {"equal": agree, "different": disagree, "error": errors}
    replicas = Traffic(agree + disagree, 0, {0.005: agree + disagree, math.inf: agree + disagree})
    return Mirror(outcomes=outcomes, replicas=replicas)


def test_a_shadow_reports_while_it_runs_and_ends_with_its_report() -> None:
    plan = ShadowPlan(duration_s=60)
    decision, report = judge_shadow(plan, mirror(98, 2, errors=1), elapsed_s=30)
    assert (decision.action, decision.weight) == (Action.HOLD, 0)
    assert report["agreement"] == 0.98
    assert report["compared"] == 100
    assert report["shadow_errors"] == 1
    assert report["p99_ms"] == pytest.approx(4.95, abs=0.06)
    decision, _ = judge_shadow(plan, mirror(98, 2), elapsed_s=60)
    assert decision.action is Action.COMPLETE


def test_a_shadow_goes_on_into_a_canary_only_when_it_agrees() -> None:
    plan = parse_plan("shadow", {"duration_s": 60, "min_agreement": 0.95, "min_compared": 50,
                                 "canary": {"steps": [20, 100]}})  # fmt: skip
    assert isinstance(plan, ShadowPlan)
    agreed, _ = judge_shadow(plan, mirror(97, 3), elapsed_s=60)
    assert (agreed.action, agreed.weight) == (Action.STEP, 20)
    apart, _ = judge_shadow(plan, mirror(90, 10), elapsed_s=60)
    assert apart.action is Action.COMPLETE
    assert "not continued into a canary" in apart.reason
    unjudged, _ = judge_shadow(plan, mirror(10), elapsed_s=600)
    assert unjudged.action is Action.HOLD  # Z5: never continue unjudged
    assert unjudged.reason == "inconclusive: 10 compared < 50"


# -- plans -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "strategy"),
    [("canary", Strategy.CANARY), ("blue-green", Strategy.BLUE_GREEN), ("ab", Strategy.AB_TEST),
     ("AB_TEST", Strategy.AB_TEST), ("shadow", Strategy.SHADOW)],
)  # fmt: skip
def test_strategy_names(name: str, strategy: Strategy) -> None:
    assert parse_strategy(name) is strategy


def test_a_bad_plan_names_the_field_and_the_fields_there_are() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_plan("ab_test", {"interval_s": 60, "max_duration_s": 30})
    assert raised.value.message.startswith("bad ab plan: max_duration_s 30")
    assert "(its fields: split, warmup_timeout_s, sticky_header" in raised.value.message


def test_verdict_figures_are_json() -> None:
    figures = failing().figures()
    assert figures["verdict"] == Verdict.FAIL.value
    assert figures["success_rate"] == 0.7
    assert figures["requests"] == 100
