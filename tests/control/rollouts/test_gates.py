"""Rollout analysis and decisions as pure functions."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.gates import (
    Action,
    CanaryPlan,
    Gates,
    Progress,
    Verdict,
    analyse,
    decide,
)


def traffic(requests: float, errors: float = 0, slow: float = 0) -> Traffic:
    """``slow`` requests took ~1 s, the rest ~10 ms."""
    fast = requests - slow
    return Traffic(requests, errors, {0.01: fast, 0.025: fast, 1.0: requests, math.inf: requests})


def test_a_healthy_window_passes() -> None:
    analysis = analyse(Gates(), traffic(200))
    assert analysis.verdict is Verdict.PASS
    assert analysis.success_rate == 1
    assert analysis.p99_ms is not None
    assert analysis.p99_ms <= 10


def test_errors_and_latency_fail_with_every_reason() -> None:
    analysis = analyse(
        Gates(min_success_rate=0.99, max_p99_ms=200), traffic(200, errors=60, slow=20)
    )
    assert analysis.verdict is Verdict.FAIL
    assert any("success rate 0.700 < 0.99" in r for r in analysis.reasons)
    assert any(r.startswith("p99") and "> 200 ms" in r for r in analysis.reasons)


def test_too_little_traffic_is_inconclusive_never_a_pass() -> None:
    """RELIABILITY Z5: no data → hold; never promote."""
    for window in (Traffic(), traffic(5)):
        analysis = analyse(Gates(min_requests=20), window)
        assert analysis.verdict is Verdict.INCONCLUSIVE
        decision, progress = decide(CanaryPlan(), analysis, Progress(step_index=2))
        assert decision.action is Action.HOLD
        assert progress == Progress(step_index=2)


def test_a_healthy_canary_steps_then_promotes() -> None:
    plan, progress = CanaryPlan(steps=(10, 50, 100)), Progress()
    actions = []
    for _ in range(3):
        decision, progress = decide(plan, analyse(plan.gates, traffic(100)), progress)
        actions.append((decision.action, decision.weight))
    assert actions == [(Action.STEP, 50), (Action.STEP, 100), (Action.PROMOTE, 100)]


def test_threshold_failed_checks_roll_back() -> None:
    plan, progress = CanaryPlan(threshold=3), Progress()
    failing = analyse(plan.gates, traffic(100, errors=30))
    decisions = []
    for _ in range(3):
        decision, progress = decide(plan, failing, progress)
        decisions.append(decision.action)
    assert decisions == [Action.HOLD, Action.HOLD, Action.ROLLBACK]
    assert "3 failed checks" in decision.reason


@pytest.mark.parametrize("steps", [(50, 10, 100), (10, 50), (0, 100), (10, 10, 100), ()])
def test_steps_must_rise_to_100(steps: tuple[int, ...]) -> None:
    with pytest.raises(ValidationError):
        CanaryPlan(steps=steps)
