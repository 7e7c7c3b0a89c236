"""The plans of the four rollout strategies, and the one parser that checks a plan.

- ``canary``: weights step up (10 → 50 → 100), judged every window (:class:`CanaryPlan`).
- ``blue_green``: a full pool of the candidate warms at 0%, traffic switches at once, and
  the old pool stays at 0% through the bake for an instant switch back (:class:`BlueGreenPlan`).
- ``ab_test``: a fixed split, sticky per user or region, until a significant difference or
  the maximum duration; the winner is reported, promoted only if asked (:class:`ABTestPlan`).
- ``shadow``: the candidate sees a copy of every request and never answers a client; its
  agreement with the baseline is reported, and it may continue into a canary (:class:`ShadowPlan`).

Plans are stored as JSON in the rollout (and in a policy) and read back by
:func:`parse_plan`, so a bad plan is refused with the field, the rule and the fix before
anything changes.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.errors import InvalidInput, describe_problem
from ferryman.gateway.routes import check_header_name


class Strategy(StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue_green"
    AB_TEST = "ab_test"
    SHADOW = "shadow"


class BlueGreenPlan(BaseModel):
    """Warm a full pool, switch all traffic at once, bake with the old pool kept at 0%."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest the new pool may take to be ready; then it "
        "is rolled back, having served nothing.",
    )  # fmt: skip
    bake_s: float = Field(
        default=300.0, gt=0, description="How long the old pool stays at 0% for an instant "
        "switch back while the gates judge the new one.",
    )  # fmt: skip
    interval_s: float = Field(default=30.0, gt=0, description="Analysis window within the bake.")
    threshold: int = Field(default=1, ge=1, description="Failed checks that switch back.")
    gates: Gates = Field(default_factory=Gates)


class ABTestPlan(BaseModel):
    """A fixed, sticky split judged by a two-sided test of one proportion per arm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: int = Field(default=50, ge=1, le=99, description="Percent of users on the candidate.")
    warmup_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest the new pool may take to be ready; then it "
        "is rolled back, having served nothing.",
    )  # fmt: skip
    sticky_header: str = Field(
        default="x-user-id",
        description="Header whose value pins a user (or a region, e.g. x-region) to one arm.",
    )
    metric: Literal["success_rate", "accuracy"] = Field(
        default="success_rate",
        description="success_rate: non-5xx answers per request; accuracy: correct answers per "
        "feedback label.",
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="Significance level over the whole test."
    )
    power: float = Field(
        default=0.8, ge=0.5, lt=1, description="Chance of detecting a difference of min_effect."
    )
    min_effect: float = Field(
        default=0.02, gt=0, lt=1, description="Smallest difference of the metric worth "
        "detecting (0.02: two points); sets the sample size each arm needs.",
    )  # fmt: skip
    min_samples: int = Field(
        default=100, ge=1, description="Fewer samples in an arm: not tested yet."
    )
    interval_s: float = Field(default=30.0, gt=0, description="Time between two looks.")
    max_duration_s: float = Field(
        default=3600.0, gt=0, description="Longest the test runs; then it ends, winner or not."
    )
    promote_winner: bool = Field(
        default=False, description="Promote a winning candidate; otherwise only report it."
    )
    max_client_error_rise: float | None = Field(
        default=0.05, ge=0, le=1, description="Most the candidate's share of 4xx answers in a "
        "window may exceed the baseline's before the test ends, rolled back: its clients send "
        "what it refuses (None: not judged).",
    )  # fmt: skip

    @field_validator("sticky_header")
    @classmethod
    def _header(cls, value: str) -> str:
        try:
            return check_header_name(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _duration(self) -> Self:
        if self.max_duration_s < self.interval_s:
            raise ValueError(
                f"max_duration_s {self.max_duration_s:g} is shorter than interval_s "
                f"{self.interval_s:g}: the test would never look"
            )
        return self

    @property
    def looks(self) -> int:
        """How many times the test may look: one per interval until the maximum duration."""
        return max(1, int(self.max_duration_s // self.interval_s))


class ShadowPlan(BaseModel):
    """Mirror every request to the candidate, compare, never serve; optionally go on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: float = Field(default=600.0, gt=0, description="How long the candidate shadows.")
    warmup_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest the new pool may take to be ready; then it "
        "is rolled back, having served nothing.",
    )  # fmt: skip
    interval_s: float = Field(default=30.0, gt=0, description="Time between progress reports.")
    min_compared: int = Field(
        default=100, ge=1, description="Fewer compared answers: agreement is not judged."
    )
    min_agreement: float = Field(
        default=0.99, ge=0, le=1, description="Share of answers that must agree with the "
        "baseline's for the canary to follow.",
    )  # fmt: skip
    canary: CanaryPlan | None = Field(
        default=None, description="Continue into this canary when agreement holds; None: end "
        "with the report.",
    )  # fmt: skip


Plan = CanaryPlan | BlueGreenPlan | ABTestPlan | ShadowPlan
PLANS: dict[Strategy, type[Plan]] = {
    Strategy.CANARY: CanaryPlan,
    Strategy.BLUE_GREEN: BlueGreenPlan,
    Strategy.AB_TEST: ABTestPlan,
    Strategy.SHADOW: ShadowPlan,
}


ALIASES = {"ab": Strategy.AB_TEST, "bluegreen": Strategy.BLUE_GREEN}
SHOWN = MappingProxyType(
    {
        Strategy.CANARY: "canary",
        Strategy.BLUE_GREEN: "blue-green",
        Strategy.AB_TEST: "ab",
        Strategy.SHADOW: "shadow",
    }
)
"""The one name people see (help, errors, tables); the API also takes the stored value."""


def shown(strategy: Strategy | str) -> str:
    """The name a person sees for ``strategy``: ``blue_green`` → ``blue-green``."""
    try:
        return SHOWN[Strategy(strategy)]
    except ValueError:
        return str(strategy)


def parse_strategy(name: str) -> Strategy:
    """``"blue-green"`` or ``"blue_green"`` → :attr:`Strategy.BLUE_GREEN` (``"ab"`` is an
    A/B test); anything else is a clear error."""
    plain = name.strip().lower().replace("-", "_")
    try:
        return ALIASES.get(plain) or Strategy(plain)
    except ValueError:
        known = ", ".join(SHOWN.values())
        raise InvalidInput(f"strategy {name[:40]!r} is not one of {known}") from None


def parse_plan(strategy: Strategy | str, plan: object) -> Plan:
    """The plan of ``strategy`` that ``plan`` (a mapping, or a plan) describes.

    >>> parse_plan("canary", {"steps": [20, 100]}).steps
    (20, 100)
    """
    name = parse_strategy(strategy)
    kind = PLANS[name]
    if isinstance(plan, kind):
        return plan
    if isinstance(plan, BaseModel):
        plan = plan.model_dump(mode="json")
    try:
        return kind.model_validate(plan)
    except ValidationError as exc:
        problems = [describe_problem(error) for error in exc.errors()[:3]]
        fields = ", ".join(kind.model_fields)
        raise InvalidInput(
            f"bad {shown(name)} plan: {'; '.join(problems)} (its fields: {fields})"
        ) from None
