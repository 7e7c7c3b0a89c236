"""``ferryman policy``: what happens by itself when a model gets a new version."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ferryman.cli import canary
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json, when
from ferryman.control.rollout import CanaryPlan

policy_app = typer.Typer(help="Roll out every new version of a model by itself.")


@policy_app.command("set")
def set_policy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose new versions roll out.")],
    endpoint: Annotated[str | None, typer.Option(help="Endpoint [the model's name].")] = None,
    on: Annotated[str, typer.Option(help="'registered', or 'alias:NAME'.")] = "registered",
    steps: canary.Steps = "10,50,100",
    interval_s: canary.Interval = 30,
    threshold: canary.Threshold = 3,
    min_success_rate: canary.MinSuccessRate = 0.99,
    max_p99_ms: canary.MaxP99 = 500,
    min_requests: canary.MinRequests = 20,
    max_prediction_drift: canary.MaxDrift = None,
    min_predictions: canary.MinPredictions = 100,
    json_output: JsonOption = False,
) -> None:
    """Every new version of MODEL is rolled out to ENDPOINT by canary, gated, by itself."""
    plan = canary.canary_plan(
        steps=steps, interval_s=interval_s, threshold=threshold,
        min_success_rate=min_success_rate, max_p99_ms=max_p99_ms, min_requests=min_requests,
        max_prediction_drift=max_prediction_drift, min_predictions=min_predictions,
    )  # fmt: skip
    state = cli_context(ctx)
    record = state.registry().policies.put(
        model, endpoint or model, on, plan.model_dump(mode="json"), state.settings.user
    )
    if json_output:
        print_json(record)
        return
    console.print(
        f"New versions of [bold]{model}[/] ({on}) roll out to {record.endpoint}: "
        f"canary {'/'.join(map(str, plan.steps))}, every {interval_s:g} s, "
        f"{threshold} failed checks roll back"
    )


@policy_app.command("list")
def list_policies(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every model's policy."""
    records = cli_context(ctx).registry().policies.all()
    if json_output:
        print_json(records)
        return
    table = Table("model", "endpoint", "on", "steps", "interval", "gates", "updated",
                  title="Policies")  # fmt: skip
    for record in records:
        plan = CanaryPlan.model_validate(record.plan)
        gates = f"success ≥ {plan.gates.min_success_rate}, p99 ≤ {plan.gates.max_p99_ms} ms"
        table.add_row(record.model, record.endpoint, record.trigger,
                      "/".join(map(str, plan.steps)), f"{plan.interval_s:g} s", gates,
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
