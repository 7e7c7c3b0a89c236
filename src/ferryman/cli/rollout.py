"""``ferryman rollout``: start a rollout by any strategy, watch it, and steer it by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ferryman.cli import plans
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json, when
from ferryman.control.rollouts import steering
from ferryman.control.rollouts.plans import shown
from ferryman.control.rollouts.state import RolloutState
from ferryman.registry import RolloutRecord

rollout_app = typer.Typer(
    rich_markup_mode=None,
    help="Rollouts (canary, blue-green, A/B test, shadow): start, status, events, pause, "
    "resume, promote, abort, rollback.",
)
RolloutId = Annotated[int, typer.Argument(help="Rollout number (ferryman rollout status).")]
ACTOR_SUFFIX = " (cli)"
SKIPS_SHOWN = 5
"""Newest versions that policies did not roll out, listed under ``rollout status``."""


@rollout_app.command("start")
@plans.plan_options
def start(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint to roll out on.")],
    to: Annotated[int, typer.Option("--to", help="Candidate version number.")],
    planned: plans.Planned,
    force: Annotated[
        bool,
        typer.Option(help="Start even when the serving version's clients could not call TO."),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Roll version TO out on ENDPOINT; the control plane moves it on by its gates."""
    kind, plan = planned
    state = cli_context(ctx)
    record = steering.start_rollout(
        state.registry(), endpoint, to,
        strategy=kind.value, plan=plan, actor=state.settings.user, force=force,
    )  # fmt: skip
    _show(record, json_output)


@rollout_app.command("status")
def status(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Argument(help="Only this endpoint.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Rollouts, newest last: where each stands and why; then the versions that policies did
    not roll out, and why."""
    registry = cli_context(ctx).registry()
    records = registry.rollouts.list(endpoint)
    if json_output:
        print_json(records)
        return
    table = Table("#", "endpoint", "strategy", "from → to", "status", "weight", "failed",
                  "reason", "updated", title="Rollouts")  # fmt: skip
    for record in records:
        change = f"{record.baseline.name} → {record.candidate.name}"
        phase = RolloutState.of(record.state).phase
        strategy = shown(record.strategy) + (
            f" ({phase})" if phase and not record.finished_at else ""
        )
        table.add_row(str(record.id), record.endpoint, strategy, change, record.status.value,
                      f"{record.weight}%", str(record.failed_checks), record.reason,
                      when(record.updated_at))  # fmt: skip
    console.print(table)
    skipped = [event for event in registry.list_events(action="policy.skipped", limit=SKIPS_SHOWN)
               if endpoint is None or event.details.get("endpoint") == endpoint]  # fmt: skip
    for event in skipped:
        console.print(f"{when(event.at)} policy of {event.object_key} did not roll out "
                      f"v{event.details.get('version')}: {event.details.get('reason')}",
                      markup=False, highlight=False, soft_wrap=True)  # fmt: skip


@rollout_app.command("events")
def events(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """One rollout's timeline, oldest first, with the figures of each decision."""
    timeline = cli_context(ctx).registry().rollouts.timeline(rollout_id)
    if json_output:
        print_json(timeline)
        return
    table = Table("time", "action", "actor", "weight", "figures", "reason",
                  title=f"Rollout {rollout_id}")  # fmt: skip
    for event in timeline:
        details = event.details
        figures = details.get("figures") or details.get("test") or details.get("report") or {}
        shown = ", ".join(f"{k}={v}" for k, v in figures.items()
                          if v is not None and not isinstance(v, dict))  # fmt: skip
        weight = details.get("weight")
        table.add_row(when(event.at), event.action.removeprefix("rollout."), event.actor,
                      "" if weight is None else f"{weight}%", shown,
                      str(details.get("reason", "")))  # fmt: skip
    console.print(table)


@rollout_app.command("pause")
def pause(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Hold a rollout where it is until resumed."""
    _steer(ctx, steering.pause, rollout_id, json_output)


@rollout_app.command("resume")
def resume(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Let a paused rollout go on (its next window starts now)."""
    _steer(ctx, steering.resume, rollout_id, json_output)


@rollout_app.command("promote")
def promote(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Promote the candidate now: all traffic, and the production alias."""
    _steer(ctx, steering.promote, rollout_id, json_output)


@rollout_app.command("abort")
def abort(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Send all traffic back to the baseline now."""
    _steer(ctx, steering.abort, rollout_id, json_output)


@rollout_app.command("rollback")
def rollback(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Back to the baseline: ends an active rollout, or undoes the newest promotion."""
    _steer(ctx, steering.rollback, rollout_id, json_output)


def _steer(ctx: typer.Context, action: steering.Steer, rollout_id: int, json_output: bool) -> None:
    state = cli_context(ctx)
    _show(action(state.registry(), rollout_id, state.settings.user + ACTOR_SUFFIX), json_output)


def _show(record: RolloutRecord, json_output: bool) -> None:
    if json_output:
        print_json(record)
        return
    console.print(
        f"rollout {record.id} on {record.endpoint} ({shown(record.strategy)}): "
        f"{record.baseline.name} → "
        f"{record.candidate.name}, {record.status.value} at {record.weight}% ({record.reason})"
    )
