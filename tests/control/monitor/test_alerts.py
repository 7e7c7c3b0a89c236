"""Alert evaluation: a pure function of rules, samples and state, stepped through time."""

from __future__ import annotations

import pytest

from ferryman.control.monitor.alerts import (
    DEFAULT_RULES,
    AlertState,
    check_removable,
    effective_rules,
    evaluate,
    rule_listing,
)
from ferryman.errors import Conflict
from ferryman.registry import AlertLevel, AlertRecord, AlertRule, AlertStatus, MetricSample

P99 = next(rule for rule in DEFAULT_RULES if rule.name == "p99-latency")


def at(t: float, variant: str = "v2", endpoint: str = "digits", **values: float) -> MetricSample:
    return MetricSample(time_s=t, endpoint=endpoint, variant=variant, values=values)


def test_the_defaults_are_the_issues_list() -> None:
    as_text = {(r.name, r.series, r.comparison, r.threshold, r.for_s, r.level.value)
               for r in DEFAULT_RULES}  # fmt: skip
    assert as_text == {
        ("p99-latency", "p99_ms", ">", 200, 120, "warning"),
        ("error-rate", "error_rate", ">", 0.01, 0, "critical"),
        ("input-drift", "input_drift_psi", ">", 0.2, 0, "warning"),
        ("accuracy", "accuracy", "<", 0.9, 0, "critical"),
        ("replica-restarts", "restarts_10m", ">", 3, 0, "critical"),
    }  # fmt: skip


def test_drift_and_accuracy_judge_only_enough_samples() -> None:
    """Issue 19: PSI 5.1 from a canary's first dozen rows, and accuracy 0 from one label,
    used to fire. Each default now needs its minimum of rows or labels first."""
    rules = [rule for rule in DEFAULT_RULES if rule.name in {"input-drift", "accuracy"}]
    assert {(r.name, r.min_samples) for r in rules} == {("input-drift", 200), ("accuracy", 50)}
    early = MetricSample(
        time_s=0, endpoint="digits", variant="v2",
        values={"input_drift_psi": 5.1, "accuracy": 0.0},
        sizes={"input_drift_psi": 12, "accuracy": 1},
    )  # fmt: skip
    outcome = evaluate(rules, [early], AlertState(), now_s=0.0)
    assert (outcome.fired, outcome.state) == ([], AlertState())
    later = early.model_copy(
        update={"values": {"input_drift_psi": 0.5, "accuracy": 0.8},
                "sizes": {"input_drift_psi": 250, "accuracy": 60}}
    )  # fmt: skip
    fired = evaluate(rules, [later], outcome.state, now_s=10.0).fired
    assert {(c.rule, c.level) for c in fired} == {
        ("input-drift", AlertLevel.WARNING), ("accuracy", AlertLevel.CRITICAL),
    }  # fmt: skip
    accuracy = next(c for c in fired if c.rule == "accuracy")
    assert accuracy.message == "digits/v2: accuracy is 0.8 (< 0.9 over 60 samples)"


def test_min_samples_counts_requests_for_traffic_and_nothing_elsewhere() -> None:
    slow = AlertRule(name="slow", series="p99_ms", comparison=">", threshold=100, min_samples=20)
    busy = AlertRule(name="busy", series="replicas", comparison=">", threshold=1, min_samples=20)
    few = MetricSample(time_s=0, endpoint="e", variant="v1", values={"p99_ms": 900,
                       "replicas": 2}, sizes={"p99_ms": 3})  # fmt: skip
    fired = evaluate([slow, busy], [few], AlertState(), now_s=0.0).fired
    assert [c.rule for c in fired] == ["busy"]  # replicas stand on no sample: no minimum
    many = few.model_copy(update={"sizes": {"p99_ms": 40}})
    assert [c.rule for c in evaluate([slow], [many], AlertState(), now_s=0.0).fired] == ["slow"]


def test_p99_fires_only_after_holding_two_minutes_then_resolves() -> None:
    state = AlertState()
    fired_at = None
    for step in range(20):  # a sample every 10 s, p99 250 ms throughout
        outcome = evaluate([P99], [at(step * 10, p99_ms=250)], state, now_s=step * 10.0)
        state = outcome.state
        assert outcome.resolved == []
        if outcome.fired:
            assert fired_at is None  # fires once, not every tick
            fired_at = step * 10
            [change] = outcome.fired
            assert (change.rule, change.level, change.variant, change.value) == (
                "p99-latency", AlertLevel.WARNING, "v2", 250,
            )  # fmt: skip
            assert change.message == "digits/v2: p99_ms is 250 (> 200 for 120 s)"
    assert fired_at == 120
    outcome = evaluate([P99], [at(200, p99_ms=90)], state, now_s=200.0)
    [back] = outcome.resolved
    assert (back.value, back.message) == (90, "digits/v2: resolved, p99_ms is 90 (no longer > 200)")
    assert outcome.state == AlertState()


def test_a_dip_restarts_the_wait() -> None:
    state = AlertState()
    for t, p99 in ((0, 250), (60, 250), (70, 150), (80, 250), (190, 250)):
        outcome = evaluate([P99], [at(t, p99_ms=p99)], state, now_s=float(t))
        state = outcome.state
        assert outcome.fired == []  # 80 → 190 is 110 s: not yet
    assert evaluate([P99], [at(200, p99_ms=250)], state, now_s=200.0).fired != []


def test_no_data_disabled_or_removed_rules_and_gone_variants_resolve() -> None:
    rule = AlertRule(name="errors", series="error_rate", comparison=">", threshold=0.01)
    firing = evaluate([rule], [at(0, error_rate=0.5)], AlertState(), 0.0).state
    no_data = evaluate([rule], [at(10)], firing, 10.0)
    assert [c.message for c in no_data.resolved] == [
        "digits/v2: resolved, error_rate has no data now (or the variant is gone)"
    ]
    disabled = rule.model_copy(update={"enabled": False})
    off = evaluate([disabled], [at(10, error_rate=0.5)], firing, 10.0)
    assert [c.message for c in off.resolved] == [
        "digits/v2: resolved, the rule was removed or disabled"
    ]
    assert evaluate([], [at(10, error_rate=0.5)], firing, 10.0).resolved != []
    assert evaluate([rule], [], firing, 10.0).resolved[0].value is None


def test_rules_apply_per_variant_and_to_their_endpoint_only() -> None:
    rule = AlertRule(name="acc", series="accuracy", comparison="<", threshold=0.9,
                     endpoint="digits")  # fmt: skip
    samples = [at(0, "v1", accuracy=0.95), at(0, "v2", accuracy=0.6),
               at(0, "v1", "fraud", accuracy=0.1)]  # fmt: skip
    outcome = evaluate([rule], samples, AlertState(), 0.0)
    assert [(c.endpoint, c.variant) for c in outcome.fired] == [("digits", "v2")]


@pytest.mark.parametrize(
    ("comparison", "value", "holds"),
    [(">", 1.0, False), (">=", 1.0, True), ("<", 1.0, False), ("<=", 1.0, True),
     (">", 1.5, True), ("<", 0.5, True)],
)  # fmt: skip
def test_comparisons(comparison: str, value: float, holds: bool) -> None:
    rule = AlertRule(name="r", series="qps", comparison=comparison, threshold=1.0)
    assert bool(evaluate([rule], [at(0, qps=value)], AlertState(), 0.0).fired) is holds


def test_a_restart_keeps_firing_alerts_without_firing_them_again() -> None:
    record = AlertRecord(
        id=7, rule="error-rate", level=AlertLevel.CRITICAL, endpoint="digits", variant="v2",
        state=AlertStatus.FIRING, value=0.05, threshold=0.01, message="m",
        started_at="2026-12-09T00:00:00Z", resolved_at=None,
    )  # fmt: skip
    state = AlertState.of_firing([record])
    still = evaluate(list(DEFAULT_RULES), [at(0, error_rate=0.05)], state, 0.0)
    assert (still.fired, still.resolved) == ([], [])
    gone = evaluate(list(DEFAULT_RULES), [at(10, error_rate=0.0)], still.state, 10.0)
    assert [c.rule for c in gone.resolved] == ["error-rate"]


def test_stored_rules_override_defaults_and_add_to_them() -> None:
    override = P99.model_copy(update={"threshold": 500.0})
    mine = AlertRule(name="busy", series="qps", comparison=">", threshold=100)
    rules = effective_rules([mine, override])
    assert [r.name for r in rules] == [r.name for r in DEFAULT_RULES] + ["busy"]
    assert rules[0].threshold == 500
    listing = {r.name: (r.default, r.overridden) for r in rule_listing([mine, override])}
    assert listing["p99-latency"] == (True, True)
    assert listing["accuracy"] == (True, False)
    assert listing["busy"] == (False, False)
    with pytest.raises(Conflict, match="cannot be removed"):
        check_removable("accuracy", [mine, override])
    check_removable("p99-latency", [override])  # removing an override restores the default
    check_removable("busy", [mine])
