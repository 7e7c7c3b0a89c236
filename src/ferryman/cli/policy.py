"""``ferryman policy``: what happens by itself when a model gets a new version."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ferryman.cli import plans
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json, when
from ferryman.control.rollouts.plans import parse_plan, parse_strategy
from ferryman.registry import OfflineGate, offline_gate

policy_app = typer.Typer(
    rich_markup_mode=None, help="Roll out every new version of a model by itself."
)


@policy_app.command("set")
def set_policy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose new versions roll out.")],
    endpoint: Annotated[str | None, typer.Option(help="Endpoint [the model's name].")] = None,
    on: Annotated[str, typer.Option(help="'registered', or 'alias:NAME'.")] = "registered",
    strategy: plans.StrategyOption = "canary",
    steps: plans.Steps = None,
    interval_s: plans.Interval = None,
    threshold: plans.Threshold = None,
    min_success_rate: plans.MinSuccessRate = None,
    max_p99_ms: plans.MaxP99 = None,
    min_requests: plans.MinRequests = None,
    max_prediction_drift: plans.MaxDrift = None,
    min_predictions: plans.MinPredictions = None,
    bake_s: plans.Bake = None,
    warmup_timeout_s: plans.Warmup = None,
    split: plans.Split = None,
    sticky_header: plans.StickyHeader = None,
    metric: plans.Metric = None,
    alpha: plans.Alpha = None,
    power: plans.Power = None,
    min_effect: plans.MinEffect = None,
    min_samples: plans.MinSamples = None,
    max_duration_s: plans.MaxDuration = None,
    promote_winner: plans.PromoteWinner = None,
    duration_s: plans.Duration = None,
    min_agreement: plans.MinAgreement = None,
    min_compared: plans.MinCompared = None,
    then_canary: plans.ThenCanary = False,
    offline_metric: Annotated[
        str | None,
        typer.Option(help="Roll out only versions whose offline metric (e.g. accuracy) passes."),
    ] = None,
    max_offline_drop: Annotated[
        float | None,
        typer.Option(help="Most the offline metric may be below production's (e.g. 0.02)."),
    ] = None,
    min_offline: Annotated[
        float | None, typer.Option(help="Least the offline metric may be (e.g. 0.9).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Every new version of MODEL is rolled out to ENDPOINT by STRATEGY, gated, by itself."""
    options = plans.PlanOptions(
        steps=steps, interval_s=interval_s, threshold=threshold,
        min_success_rate=min_success_rate, max_p99_ms=max_p99_ms, min_requests=min_requests,
        max_prediction_drift=max_prediction_drift, min_predictions=min_predictions,
        bake_s=bake_s, warmup_timeout_s=warmup_timeout_s, split=split,
        sticky_header=sticky_header, metric=metric, alpha=alpha, power=power,
        min_effect=min_effect, min_samples=min_samples, max_duration_s=max_duration_s,
        promote_winner=promote_winner, duration_s=duration_s, min_agreement=min_agreement,
        min_compared=min_compared, then_canary=then_canary,
    )  # fmt: skip
    kind, plan = plans.build_plan(strategy, options)
    gate = offline_gate(offline_metric, max_offline_drop, min_offline)
    state = cli_context(ctx)
    record = state.registry().policies.put(
        model, endpoint or model, on, plan.model_dump(mode="json"), state.settings.user,
        strategy=kind.value, gate=gate,
    )  # fmt: skip
    if json_output:
        print_json(record)
        return
    console.print(
        f"New versions of [bold]{model}[/] ({on}) roll out to {record.endpoint}"
        f"{_gated(record.offline_gate)}: {plans.describe(kind, plan)}"
    )


@policy_app.command("list")
def list_policies(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every model's policy."""
    records = cli_context(ctx).registry().policies.all()
    if json_output:
        print_json(records)
        return
    table = Table("model", "endpoint", "on", "plan", "updated", title="Policies")
    for record in records:
        kind = parse_strategy(record.strategy)
        table.add_row(record.model, record.endpoint, record.trigger,
                      plans.describe(kind, parse_plan(kind, record.plan))
                      + _gated(record.offline_gate),
                      when(record.updated_at))  # fmt: skip
    console.print(table)


@policy_app.command("remove")
def remove_policy(
    ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model name.")]
) -> None:
    """Stop rolling out new versions of MODEL by itself."""
    state = cli_context(ctx)
    state.registry().policies.remove(model, state.settings.user)
    console.print(f"{model}: no policy")


def _gated(gate: OfflineGate | None) -> str:
    """The offline gate as people read it: `` once offline accuracy ≥ 0.9 and ≥ production's
    - 0.02``; empty without one."""
    if gate is None:
        return ""
    bounds = []
    if gate.min_offline is not None:
        bounds.append(f"≥ {gate.min_offline:g}")
    if gate.max_offline_drop is not None:
        bounds.append(f"≥ production's - {gate.max_offline_drop:g}")
    return f" once offline {gate.offline_metric} {' and '.join(bounds)}"
