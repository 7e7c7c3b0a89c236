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
@plans.plan_options
def set_policy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose new versions roll out.")],
    *,
    endpoint: Annotated[str | None, typer.Option(help="Endpoint [the model's name].")] = None,
    on: Annotated[str, typer.Option(help="'registered', or 'alias:NAME'.")] = "registered",
    planned: plans.Planned,
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
    kind, plan = planned
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
