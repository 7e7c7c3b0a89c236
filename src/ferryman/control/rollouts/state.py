"""A rollout's persisted state, typed: its phase and what each strategy keeps across ticks.

The registry stores it as JSON with the rollout (so it survives a control-plane restart);
the control plane reads and writes it only through :class:`RolloutState`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Phase(StrEnum):
    """Where a rollout is within its strategy. A canary has no phase of its own."""

    WARMING = "warming"  # blue-green, A/B test, shadow: the candidate's pool warms at 0%
    BAKING = "baking"  # blue-green: switched, the old pool kept warm for the bake
    RUNNING = "running"  # A/B test: the split runs until significance or time is up
    SHADOWING = "shadowing"  # shadow: every request mirrored to the candidate, never served
    CANARY = "canary"  # shadow, then a canary (``then_canary``)


class RolloutState(BaseModel):
    """Everything a strategy keeps with the rollout; unknown keys are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    phase: Phase | None = None
    pool_replicas: int | None = Field(
        default=None, description="Blue-green on an autoscaled endpoint: each pool's size."
    )
    sticky_header_before: str | None = Field(
        default=None, description="The endpoint's sticky header before an A/B test set its own."
    )
    production_before: int | None = Field(
        default=None, description="The production version a promotion replaced (for undo)."
    )
    began: dict[str, list[float]] | None = Field(
        default=None, description="A/B test: [requests, errors] of each arm when it began."
    )
    started_at: str | None = Field(
        default=None, description="A/B test: when the split began (ISO 8601, UTC)."
    )
    result: dict[str, Any] | None = Field(default=None, description="A/B test: the last look.")
    report: dict[str, Any] | None = Field(default=None, description="Shadow: the last report.")

    @classmethod
    def of(cls, stored: dict[str, Any]) -> RolloutState:
        return cls.model_validate(stored)

    def stored(self) -> dict[str, Any]:
        """The JSON the registry keeps (fields never set are left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def with_(self, **changes: Any) -> RolloutState:
        return RolloutState.model_validate({**self.stored(), **changes})
