"""``ferryman cost``: what each endpoint's variants cost per day, and what was saved."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from ferryman.capacity.cost import MAX_DAYS, CostHistory, fleet_spend
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, errors, print_json


def cost(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Argument(help="One endpoint; every endpoint if left out.")
    ] = None,
    days: Annotated[
        int, typer.Option(min=1, max=MAX_DAYS, help="UTC days back, today included.")
    ] = 7,
    json_output: JsonOption = False,
) -> None:
    """Replica-seconds and cost per endpoint, variant and UTC day, from the monitor's history,
    and what scale-to-zero and INT8 saved over the window."""
    state = cli_context(ctx)
    report = fleet_spend(state.registry(), state.settings, time.time(), days, endpoint)
    if json_output:
        print_json(report)
        return
    if report.instance is None:
        errors.print(report.note, markup=False, highlight=False, soft_wrap=True)
        return
    console.print(daily_table(report))
    console.print(savings_table(report))


def daily_table(report: CostHistory) -> Table:
    table = Table(
        "day (UTC)",
        "endpoint",
        "variant",
        "replica-hours",
        "hours counted",
        "hours at zero",
        "cost",
        title=f"Cost per day at {report.price_per_hour:g}/h per replica ({report.note})",
        caption=f"total {report.total_cost:.4g}",
    )
    for day in report.days:
        table.add_row(
            day.day,
            day.endpoint,
            day.variant,
            f"{day.replica_seconds / 3600:.3g}",
            f"{day.counted_s / 3600:.3g}",
            f"{day.zero_s / 3600:.3g}",
            f"{day.cost:.4g}",
        )
    if not report.days:
        table.caption = "no samples in the window: does the control plane run (ferryman up)?"
    return table


def savings_table(report: CostHistory) -> Table:
    table = Table(
        "endpoint",
        "variant",
        "hours at zero",
        "scale-to-zero saved",
        "INT8 saved",
        "how",
        title="Saved over the window",
    )
    for saved in report.savings:
        table.add_row(
            saved.endpoint,
            saved.variant,
            f"{saved.scaled_to_zero_s / 3600:.3g}",
            f"{saved.scale_to_zero_saved:.4g}",
            "-" if saved.int8_saved is None else f"{saved.int8_saved:.4g}",
            saved.int8_note,
        )
    return table
