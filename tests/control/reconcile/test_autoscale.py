"""The autoscaler and the forecast as pure functions, with time stepped by the test."""

from __future__ import annotations

import math

import pytest

from ferryman.control.reconcile.autoscale import (
    Decision,
    Observation,
    ScalerState,
    ScalingPolicy,
    desired_replicas,
)
from ferryman.control.reconcile.forecast import ForecastState, SeasonalModel, observe, predict
from ferryman.errors import InvalidInput


def run(
    policy: ScalingPolicy, steps: list[Observation], state: ScalerState | None = None
) -> list[Decision]:
    decisions = []
    state = state or ScalerState()
    replicas = steps[0].replicas
    for step in steps:
        decision, state = desired_replicas(
            policy, Observation(**{**step.__dict__, "replicas": replicas}), state
        )
        replicas = decision.replicas
        decisions.append(decision)
    return decisions


def test_scales_up_at_once_with_load() -> None:
    policy = ScalingPolicy(min_replicas=1, max_replicas=4, target_in_flight=4)
    decision, _ = desired_replicas(policy, Observation(0.0, 1, in_flight=13), ScalerState())
    assert decision.replicas == 4
    assert "13 in flight" in decision.reason


def test_never_leaves_the_bounds() -> None:
    policy = ScalingPolicy(min_replicas=2, max_replicas=3, target_in_flight=1)
    assert (
        desired_replicas(policy, Observation(0, 2, in_flight=100), ScalerState())[0].replicas == 3
    )
    assert desired_replicas(policy, Observation(0, 3, in_flight=0), ScalerState())[0].replicas == 3
    later = run(policy, [Observation(t, 3, in_flight=0) for t in range(0, 200, 10)])
    assert later[-1].replicas == 2


def test_scale_down_waits_for_the_window() -> None:
    policy = ScalingPolicy(
        min_replicas=1, max_replicas=4, target_in_flight=1, scale_down_window_s=60
    )
    steps = [Observation(0.0, 4, in_flight=4)] + [
        Observation(float(t), 4, in_flight=1) for t in range(10, 100, 10)
    ]
    replicas = [d.replicas for d in run(policy, steps)]
    assert replicas[:6] == [4, 4, 4, 4, 4, 4]  # t = 0..50: 4 was recommended within 60 s
    assert replicas[-1] == 1


def test_a_standby_pool_is_held_idle_and_shrinks_only_after_the_window() -> None:
    policy = ScalingPolicy(min_replicas=1, max_replicas=8, scale_down_window_s=60)
    warming = [Observation(float(t), 1, in_flight=0, standby=3) for t in range(0, 30, 10)]
    after = [Observation(float(t), 3, in_flight=0) for t in range(30, 150, 10)]  # standby gone
    decisions = run(policy, warming + after)
    replicas = [d.replicas for d in decisions]
    assert replicas[:3] == [3, 3, 3]  # the whole pool at once, with no load at all
    assert "3 on standby" in decisions[0].reason
    assert replicas[3:9] == [3] * 6  # t = 30..80: 3 was recommended within 60 s
    assert replicas[-1] == 1
    busy = Observation(0.0, 3, in_flight=24, standby=3)
    assert desired_replicas(policy, busy, ScalerState())[0].replicas == 6  # a floor, no cap


def test_a_short_dip_does_not_drop_capacity() -> None:
    policy = ScalingPolicy(target_in_flight=1, max_replicas=4, scale_down_window_s=30)
    load = [4, 4, 0, 4, 4, 0, 4]
    decisions = run(policy, [Observation(float(t * 5), 4, in_flight=v) for t, v in enumerate(load)])
    assert {d.replicas for d in decisions} == {4}


def test_scale_up_window_damps_spikes() -> None:
    policy = ScalingPolicy(target_in_flight=1, max_replicas=8, scale_up_window_s=20)
    decisions = run(
        policy,
        [Observation(0.0, 1, in_flight=1), Observation(5.0, 1, in_flight=8),
         Observation(10.0, 1, in_flight=8), Observation(25.0, 1, in_flight=8)],
    )  # fmt: skip
    assert [d.replicas for d in decisions] == [1, 1, 1, 8]


def test_scale_to_zero_after_idle_and_wake_on_held_requests() -> None:
    policy = ScalingPolicy(min_replicas=0, max_replicas=2, idle_to_zero_s=300)
    steps = [Observation(0.0, 1, in_flight=1)] + [
        Observation(float(t), 1, in_flight=0) for t in range(60, 420, 60)
    ]
    decisions = run(policy, steps)
    assert [d.replicas for d in decisions] == [1, 1, 1, 1, 1, 0, 0]  # t = 0, 60, … 360 s
    assert "idle for 300 s" in decisions[5].reason
    woken, _ = desired_replicas(policy, Observation(500.0, 0, in_flight=0, held=3), ScalerState())
    assert woken.replicas == 1
    assert "3 requests held" in woken.reason


def test_active_endpoints_with_min_zero_keep_one() -> None:
    policy = ScalingPolicy(min_replicas=0, max_replicas=2, target_in_flight=4)
    decision, _ = desired_replicas(policy, Observation(0.0, 1, in_flight=0.5), ScalerState())
    assert decision.replicas == 1


def test_qps_target_and_forecast_floor() -> None:
    policy = ScalingPolicy(max_replicas=10, target_in_flight=100, target_qps=50)
    by_qps, _ = desired_replicas(policy, Observation(0.0, 1, in_flight=1, qps=120), ScalerState())
    assert by_qps.replicas == 3
    ahead, _ = desired_replicas(
        policy, Observation(0.0, 1, in_flight=1, qps=10, forecast_qps=400), ScalerState()
    )
    assert ahead.replicas == 8
    assert "forecast 400.0 qps" in ahead.reason


@pytest.mark.parametrize(
    "kwargs", [{"min_replicas": 3, "max_replicas": 2}, {"target_in_flight": 0}, {"target_qps": -1}]
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        ScalingPolicy(**kwargs)  # type: ignore[arg-type]


def test_forecast_learns_a_season() -> None:
    model = SeasonalModel(season_length=24)
    state = ForecastState()
    pattern = [10 + 90 * (8 <= hour % 24 < 18) for hour in range(24 * 5)]
    for value in pattern:
        assert predict(model, state, 1) is None or state.steps >= 24
        state = observe(model, state, value)
    # Five days seen, then 00:00-06:00 of the sixth: the next hour (07:00) is still night,
    # the one after (08:00) is day; the forecast knows before any 08:00 value arrives.
    assert state.steps % 24 == 0
    at_dawn = state
    for value in pattern[:7]:
        at_dawn = observe(model, at_dawn, value)
    assert predict(model, at_dawn, 1) == pytest.approx(10, abs=10)
    assert predict(model, at_dawn, 2) == pytest.approx(100, abs=10)


def test_forecast_scales_ahead_of_a_daily_peak_and_reactive_lags() -> None:
    """A synthetic day of minutes: a morning ramp to 400 qps. Replicas take 5 minutes to
    become ready. With the forecast the floor rises before the peak; reactive alone lags."""
    minutes_per_day, cold_start_min = 24 * 60, 5
    policy = ScalingPolicy(min_replicas=1, max_replicas=10, target_in_flight=1000, target_qps=50)

    def rate(minute: int) -> float:
        hour = (minute % minutes_per_day) / 60
        return 400.0 if 9 <= hour < 17 else 20.0

    shortfall = {}
    for use_forecast in (False, True):
        model, forecast = SeasonalModel(season_length=minutes_per_day), ForecastState()
        pending: list[int]
        state, pending, ready = ScalerState(), [], 1
        missing_minutes = 0
        for minute in range(3 * minutes_per_day):
            ready += sum(1 for due in pending if due == minute)
            pending = [due for due in pending if due > minute]
            qps = rate(minute)
            ahead = predict(model, forecast, cold_start_min) if use_forecast else None
            decision, state = desired_replicas(
                policy,
                Observation(
                    minute * 60.0, ready + len(pending), in_flight=1, qps=qps, forecast_qps=ahead
                ),
                state,
            )
            wanted = decision.replicas - (ready + len(pending))
            pending += [minute + cold_start_min] * max(0, wanted)
            ready = min(ready, decision.replicas)
            if minute >= 2 * minutes_per_day and ready * policy.target_qps < qps:  # type: ignore[operator]
                missing_minutes += 1
            forecast = observe(model, forecast, qps)
        shortfall[use_forecast] = missing_minutes
    assert shortfall[False] >= cold_start_min
    assert shortfall[True] < shortfall[False]
    assert shortfall[True] <= 1
    assert math.isfinite(shortfall[True])
