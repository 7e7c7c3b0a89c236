"""The rollout plan's command-line options, shared by ``rollout start`` and ``policy set``.

Every option defaults to "not given", so the plan's own default applies; an option that
does not belong to the chosen strategy is refused by name (``--bake`` on a canary), and the
plan is checked by the parser the API uses (``rollouts.plans.parse_plan``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer

from ferryman.control.rollouts.plans import (
    PLANS,
    Plan,
    Strategy,
    parse_plan,
    parse_strategy,
    shown,
)
from ferryman.errors import InvalidInput

StrategyOption = Annotated[str, typer.Option(help="canary, blue-green, ab (A/B test) or shadow.")]
Steps = Annotated[str | None, typer.Option(help="Canary: candidate weights, percent [10,50,100].")]
Interval = Annotated[float | None, typer.Option("--interval", help="Analysis window, s [30].")]
Threshold = Annotated[int | None, typer.Option(help="Failed checks that roll back [3; b/g 1].")]
MinSuccessRate = Annotated[float | None, typer.Option(help="Gate: non-5xx share [0.99].")]
MaxP99 = Annotated[float | None, typer.Option(help="Gate: p99 latency, ms [500].")]
MaxTtftP99 = Annotated[
    float | None, typer.Option(help="Gate: p99 time to first token of LLM streams, ms [off].")
]
MaxInterTokenP99 = Annotated[
    float | None, typer.Option(help="Gate: p99 time between tokens of LLM streams, ms [off].")
]
MinThumbsUpRate = Annotated[
    float | None, typer.Option(help="Gate: share of rated LLM completions thumbs up [off].")
]
MaxThumbsUpDrop = Annotated[
    float | None, typer.Option(help="Gate: most the thumbs-up rate may fall below the baseline's.")
]
MinRated = Annotated[int | None, typer.Option(help="Thumbs-up rate judged from this many [50].")]
MinRequests = Annotated[int | None, typer.Option(help="Fewer per window: hold [20].")]
MaxDrift = Annotated[
    float | None, typer.Option(help="Gate: JS divergence of top-1 classes; above: hold.")
]
MinPredictions = Annotated[int | None, typer.Option(help="Drift judged from this many [100].")]
Bake = Annotated[float | None, typer.Option("--bake", help="Blue-green: bake time, s [300].")]
Warmup = Annotated[
    float | None, typer.Option("--warmup-timeout", help="New pool ready within, s [300].")
]
Split = Annotated[int | None, typer.Option(help="A/B: percent of users on the candidate [50].")]
StickyHeader = Annotated[
    str | None, typer.Option(help="A/B: header that pins a user or region [x-user-id].")
]
Metric = Annotated[str | None, typer.Option(help="A/B: success_rate or accuracy [success_rate].")]
Alpha = Annotated[float | None, typer.Option(help="A/B: significance level [0.05].")]
Power = Annotated[float | None, typer.Option(help="A/B: power for --min-effect [0.8].")]
MinEffect = Annotated[float | None, typer.Option(help="A/B: smallest difference to detect [0.02].")]
MinSamples = Annotated[int | None, typer.Option(help="A/B: samples per arm before testing [100].")]
MaxDuration = Annotated[
    float | None, typer.Option("--max-duration", help="A/B: longest run, s [3600].")
]
PromoteWinner = Annotated[
    bool | None, typer.Option("--promote-winner/--report-only", help="A/B: promote a winner.")
]
Duration = Annotated[float | None, typer.Option("--duration", help="Shadow: how long, s [600].")]
MinAgreement = Annotated[
    float | None, typer.Option(help="Shadow: agreement needed to go on to a canary [0.99].")
]
MinCompared = Annotated[int | None, typer.Option(help="Shadow: answers compared at least [100].")]
ThenCanary = Annotated[
    bool, typer.Option("--then-canary", help="Shadow: continue into a canary (--steps…) if agreed.")
]

GATES = ("min_success_rate", "max_p99_ms", "max_ttft_p99_ms", "max_inter_token_p99_ms",
         "min_thumbs_up_rate", "max_thumbs_up_drop", "min_rated",
         "min_requests", "max_prediction_drift", "min_predictions")  # fmt: skip


@dataclass(frozen=True)
class PlanOptions:
    """What was given on the command line (None: not given)."""

    steps: str | None = None
    interval_s: float | None = None
    threshold: int | None = None
    min_success_rate: float | None = None
    max_p99_ms: float | None = None
    max_ttft_p99_ms: float | None = None
    max_inter_token_p99_ms: float | None = None
    min_thumbs_up_rate: float | None = None
    max_thumbs_up_drop: float | None = None
    min_rated: int | None = None
    min_requests: int | None = None
    max_prediction_drift: float | None = None
    min_predictions: int | None = None
    bake_s: float | None = None
    warmup_timeout_s: float | None = None
    split: int | None = None
    sticky_header: str | None = None
    metric: str | None = None
    alpha: float | None = None
    power: float | None = None
    min_effect: float | None = None
    min_samples: int | None = None
    max_duration_s: float | None = None
    promote_winner: bool | None = None
    duration_s: float | None = None
    min_agreement: float | None = None
    min_compared: int | None = None
    then_canary: bool = False


def build_plan(strategy_name: str, options: PlanOptions) -> tuple[Strategy, Plan]:
    """The strategy and the plan the options describe; a misplaced or bad one is an error."""
    strategy = parse_strategy(strategy_name)
    given = {k: v for k, v in asdict(options).items() if v is not None and v is not False}
    stray = sorted(set(given) - _accepted(strategy))
    if stray:
        flags = ", ".join("--" + name.removesuffix("_s").replace("_", "-") for name in stray)
        raise InvalidInput(f"{flags} does not apply to a {shown(strategy)} rollout")
    gates = {name: given.pop(name) for name in GATES if name in given}
    if "steps" in given:
        given["steps"] = parse_steps(str(given["steps"]))
    canary: dict[str, Any] = {}
    if strategy is Strategy.SHADOW:
        canary = {k: given.pop(k) for k in ("steps", "threshold") if k in given}
        if not given.pop("then_canary", False):
            if canary or gates:
                raise InvalidInput("--steps, --threshold and gates need --then-canary on a shadow")
            return strategy, parse_plan(strategy, given)
        canary["gates"] = gates
        if "interval_s" in given:
            canary["interval_s"] = given["interval_s"]
        given["canary"] = canary
    elif gates:
        given["gates"] = gates
    return strategy, parse_plan(strategy, given)


def _accepted(strategy: Strategy) -> set[str]:
    """The options that belong to a strategy's plan (a shadow's include its canary's)."""
    fields = set(PLANS[strategy].model_fields)
    if "gates" in fields or strategy is Strategy.SHADOW:
        fields |= set(GATES)
    if strategy is Strategy.SHADOW:
        fields |= {"then_canary", "steps", "threshold"}
    return fields - {"gates", "canary"}


def describe(strategy: Strategy, plan: Plan) -> str:
    """One line for people: what the plan will do."""
    data = plan.model_dump()
    if strategy is Strategy.CANARY:
        steps = "/".join(map(str, data["steps"]))
        return (f"canary {steps}, every {data['interval_s']:g} s, {data['threshold']} failed "
                "checks roll back")  # fmt: skip
    if strategy is Strategy.BLUE_GREEN:
        return (f"blue-green: warm a full pool, switch at once, bake {data['bake_s']:g} s "
                "with the old pool kept for an instant switch back")  # fmt: skip
    if strategy is Strategy.AB_TEST:
        then = "promote the winner" if data["promote_winner"] else "report the winner"
        return (f"A/B test on {data['metric']}: {data['split']}% of users by "
                f"{data['sticky_header']} for at most {data['max_duration_s']:g} s, alpha "
                f"{data['alpha']}, then {then}")  # fmt: skip
    then = " then a canary if it agrees" if data["canary"] else ""
    return f"shadow for {data['duration_s']:g} s, compared with the baseline, never served{then}"


def parse_steps(text: str) -> tuple[int, ...]:
    """``"10,50,100"`` → (10, 50, 100); anything else is a clear error."""
    try:
        return tuple(int(step) for step in text.split(","))
    except ValueError:
        raise InvalidInput(f"--steps {text!r} is not a list of numbers like 10,50,100") from None
