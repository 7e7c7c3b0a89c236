"""How many replicas a variant should have: one pure function of policy, observation, state.

``desired_replicas(policy, observed, state) -> (decision, state)``: the reconciler passes in
what it measured and what the function returned last time, and acts on the decision. Time
comes in ``observed.now_s`` (a monotonic clock), so tests step time without sleeping.

The rules, in order:
1. reactive: enough replicas for the load now, ``ceil(in_flight / target_in_flight)`` and,
   when a QPS target is set, ``ceil(qps / target_qps)``; never fewer than ``standby``, the
   pool a blue-green rollout holds ready whatever its load (a recommendation like any
   other, so when the rollout ends the pool shrinks only after the scale-down window);
2. forecast: never fewer than the predicted rate one cold start ahead needs, so capacity is
   ready before a predictable peak;
3. requests held at the gateway with no replica wake the endpoint from zero at once;
4. stabilisation: scaling up takes the lowest recommendation of the last
   ``scale_up_window_s`` (0: at once), scaling down the highest of the last
   ``scale_down_window_s``, so a short dip never drops capacity;
5. scale to zero only with ``min_replicas == 0`` after ``idle_to_zero_s`` without traffic;
6. always within [min_replicas, max_replicas].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ferryman.errors import InvalidInput


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int = 1
    max_replicas: int = 4
    target_in_flight: float = 4.0
    target_qps: float | None = None
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 60.0
    idle_to_zero_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise InvalidInput(
                f"replica bounds [{self.min_replicas}, {self.max_replicas}] are not 0 <= min <= max"
            )
        if self.target_in_flight <= 0 or (self.target_qps is not None and self.target_qps <= 0):
            raise InvalidInput("scaling targets must be positive")


@dataclass(frozen=True)
class Observation:
    """What the control loop measured for one variant at ``now_s`` (monotonic seconds)."""

    now_s: float
    replicas: int
    in_flight: float
    qps: float = 0.0
    held: int = 0
    forecast_qps: float | None = None
    standby: int = 0


@dataclass(frozen=True)
class ScalerState:
    recommendations: tuple[tuple[float, int], ...] = ()
    last_traffic_s: float | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str


def desired_replicas(
    policy: ScalingPolicy, observed: Observation, state: ScalerState
) -> tuple[Decision, ScalerState]:
    """The replica count for ``observed`` and the state to pass in next time."""
    now = observed.now_s
    has_traffic = observed.in_flight > 0 or observed.qps > 0 or observed.held > 0
    last_traffic = now if has_traffic or state.last_traffic_s is None else state.last_traffic_s
    raw, why = _recommendation(policy, observed)
    horizon = max(policy.scale_up_window_s, policy.scale_down_window_s)
    # A fresh state (a restarted controller) counts the current size as recommended now,
    # so it never scales down before a full window of evidence.
    seen = state.recommendations
    if not seen and raw < observed.replicas:
        seen = ((now, observed.replicas),)
    history = (*((t, n) for t, n in seen if now - t <= horizon), (now, raw))
    new_state = ScalerState(history, last_traffic)

    current = observed.replicas
    if observed.held > 0 and current == 0:
        target, why = max(1, raw), f"{observed.held} requests held with no replica"
    elif raw > current:
        target = max(current, min(n for t, n in history if now - t <= policy.scale_up_window_s))
    elif raw < current:
        target = min(current, max(n for t, n in history if now - t <= policy.scale_down_window_s))
    else:
        target = current
    idle_s = now - last_traffic
    awake = current > 0 or has_traffic
    if policy.min_replicas == 0 and awake and not has_traffic and idle_s >= policy.idle_to_zero_s:
        target, awake, why = 0, False, f"idle for {idle_s:.0f} s"
    floor = max(policy.min_replicas, 1 if awake else 0)
    target = min(policy.max_replicas, max(floor, target))
    if target == current:
        return Decision(current, f"hold at {current} ({why})"), new_state
    return Decision(target, f"{current} → {target}: {why}"), new_state


def _recommendation(policy: ScalingPolicy, observed: Observation) -> tuple[int, str]:
    by_in_flight = math.ceil(observed.in_flight / policy.target_in_flight)
    candidates = [(by_in_flight, f"{observed.in_flight:g} in flight")]
    if observed.standby:
        candidates.append((observed.standby, f"{observed.standby} on standby for a rollout"))
    if policy.target_qps is not None:
        candidates.append((math.ceil(observed.qps / policy.target_qps), f"{observed.qps:g} qps"))
        if observed.forecast_qps is not None:
            needed = math.ceil(observed.forecast_qps / policy.target_qps)
            candidates.append((needed, f"forecast {observed.forecast_qps:.1f} qps"))
    return max(candidates, key=lambda candidate: candidate[0])
