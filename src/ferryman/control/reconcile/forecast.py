"""A seasonal forecast of the request rate: additive Holt-Winters, updated one step at a time.

The autoscaler asks "what will the rate be one cold start from now?" and raises its floor to
that, so replicas are ready before a predictable peak instead of after it.

Why our own thirty lines rather than statsmodels: the control loop needs an O(1) update per
observation with its state carried in and out (STYLE.md 7), while statsmodels refits the
whole history on every call and would add a large dependency to the control plane. The
smoothing here is the textbook recurrence (level, trend, one seasonal term per slot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ferryman.errors import InvalidInput


@dataclass(frozen=True)
class SeasonalModel:
    """Holt-Winters parameters: a season of ``season_length`` steps and the smoothing weights."""

    season_length: int
    alpha: float = 0.3  # level
    beta: float = 0.01  # trend
    gamma: float = 0.3  # season

    def __post_init__(self) -> None:
        if self.season_length < 2:
            raise InvalidInput(f"season_length {self.season_length} must be at least 2 steps")
        for name in ("alpha", "beta", "gamma"):
            if not 0 < getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be in (0, 1)")


@dataclass(frozen=True)
class ForecastState:
    """Everything the forecast remembers; ``steps`` counts observations so far."""

    level: float = 0.0
    trend: float = 0.0
    seasonals: tuple[float, ...] = ()
    steps: int = 0
    first_season: tuple[float, ...] = ()


def observe(model: SeasonalModel, state: ForecastState, value: float) -> ForecastState:
    """Fold one observation (e.g. requests per second over the last step) into the state."""
    if state.steps < model.season_length:  # the first season seeds level and seasonals
        first = (*state.first_season, value)
        if len(first) < model.season_length:
            return replace(state, first_season=first, steps=state.steps + 1)
        level = sum(first) / len(first)
        return ForecastState(level, 0.0, tuple(v - level for v in first), state.steps + 1, ())
    slot = state.steps % model.season_length
    seasonal = state.seasonals[slot]
    level = model.alpha * (value - seasonal) + (1 - model.alpha) * (state.level + state.trend)
    trend = model.beta * (level - state.level) + (1 - model.beta) * state.trend
    new_seasonal = model.gamma * (value - level) + (1 - model.gamma) * seasonal
    seasonals = (*state.seasonals[:slot], new_seasonal, *state.seasonals[slot + 1 :])
    return ForecastState(level, trend, seasonals, state.steps + 1, ())


def predict(model: SeasonalModel, state: ForecastState, steps_ahead: int) -> float | None:
    """The expected value ``steps_ahead`` steps from now; None until one season is seen."""
    if state.steps < model.season_length:
        return None
    slot = (state.steps + steps_ahead - 1) % model.season_length
    return max(0.0, state.level + steps_ahead * state.trend + state.seasonals[slot])


@dataclass(frozen=True)
class RateTrack:
    """Request-rate samples folded into steps of ``step_s`` for the seasonal model."""

    model: SeasonalModel
    step_s: float
    state: ForecastState = ForecastState()
    step_started_s: float | None = None
    step_sum: float = 0.0
    step_samples: int = 0

    def add(self, now_s: float, qps: float) -> RateTrack:
        """Add one sample; each completed step is one observation of its mean rate."""
        if self.step_started_s is None:
            return replace(self, step_started_s=now_s, step_sum=qps, step_samples=1)
        if now_s - self.step_started_s < self.step_s:
            return replace(self, step_sum=self.step_sum + qps, step_samples=self.step_samples + 1)
        state = observe(self.model, self.state, self.step_sum / self.step_samples)
        return replace(self, state=state, step_started_s=now_s, step_sum=qps, step_samples=1)

    def ahead(self, seconds: float) -> float | None:
        """The forecast rate ``seconds`` from now (rounded up to whole steps)."""
        return predict(self.model, self.state, max(1, math.ceil(seconds / self.step_s)))
