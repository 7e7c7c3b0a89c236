"""``ferryman rollout``: start a canary, watch it, and steer it by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ferryman.cli import canary
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json, when
from ferryman.control.rollouts import finish, start_canary
from ferryman.registry import RolloutRecord, RolloutStatus

rollout_app = typer.Typer(help="Canary rollouts: start, status, pause, resume, promote, abort.")
RolloutId = Annotated[int, typer.Argument(help="Rollout number (ferryman rollout status).")]
ACTOR_SUFFIX = " (cli)"


@rollout_app.command("start")
def start(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint to roll out on.")],
    to: Annotated[int, typer.Option("--to", help="Candidate version number.")],
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
    """Start a canary of version TO on ENDPOINT; the control plane steps it by its gates."""
    plan = canary.canary_plan(
        steps=steps, interval_s=interval_s, threshold=threshold,
        min_success_rate=min_success_rate, max_p99_ms=max_p99_ms, min_requests=min_requests,
        max_prediction_drift=max_prediction_drift, min_predictions=min_predictions,
    )  # fmt: skip
    state = cli_context(ctx)
    record = start_canary(state.registry(), endpoint, to, plan, state.settings.user)
    _show(record, json_output)


@rollout_app.command("status")
def status(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Argument(help="Only this endpoint.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Rollouts, newest last: where each stands and why."""
    records = cli_context(ctx).registry().rollouts.list(endpoint)
    if json_output:
        print_json(records)
        return
    table = Table("#", "endpoint", "from → to", "status", "weight", "failed", "reason", "updated",
                  title="Rollouts")  # fmt: skip
    for record in records:
        change = f"{record.baseline.name} → {record.candidate.name}"
        table.add_row(str(record.id), record.endpoint, change, record.status.value,
                      f"{record.weight}%", str(record.failed_checks), record.reason,
                      when(record.updated_at))  # fmt: skip
    console.print(table)


@rollout_app.command("pause")
def pause(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Hold a rollout at its current weight until resumed."""
    _steer(ctx, rollout_id, "paused", RolloutStatus.PAUSED, json_output)


@rollout_app.command("resume")
def resume(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Let a paused rollout go on (its next window starts now)."""
    _steer(ctx, rollout_id, "resumed", RolloutStatus.PROGRESSING, json_output)


@rollout_app.command("promote")
def promote(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Promote the candidate now: all traffic, and the production alias."""
    _end(ctx, rollout_id, True, json_output)


@rollout_app.command("abort")
def abort(ctx: typer.Context, rollout_id: RolloutId, json_output: JsonOption = False) -> None:
    """Send all traffic back to the baseline now."""
    _end(ctx, rollout_id, False, json_output)


def _steer(
    ctx: typer.Context, rollout_id: int, action: str, to: RolloutStatus, json_output: bool
) -> None:
    state = cli_context(ctx)
    actor = state.settings.user + ACTOR_SUFFIX
    _show(state.registry().rollouts.transition(rollout_id, actor, action, status=to), json_output)


def _end(ctx: typer.Context, rollout_id: int, promote: bool, json_output: bool) -> None:
    state = cli_context(ctx)
    registry = state.registry()
    record = registry.rollouts.get(rollout_id)
    reason = "promoted by hand" if promote else "aborted by hand"
    _show(
        finish(registry, record, promote, reason, state.settings.user + ACTOR_SUFFIX), json_output
    )


def _show(record: RolloutRecord, json_output: bool) -> None:
    if json_output:
        print_json(record)
        return
    console.print(
        f"rollout {record.id} on {record.endpoint}: {record.baseline.name} → "
        f"{record.candidate.name}, {record.status.value} at {record.weight}% ({record.reason})"
    )
