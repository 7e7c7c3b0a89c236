"""``ferryman alerts``: what fired, the rules in force, and the webhooks told about it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json, when
from ferryman.control.monitor.alerts import check_removable, rule_listing
from ferryman.control.outbound import OutboundPolicy
from ferryman.errors import InvalidInput
from ferryman.registry import SERIES, AlertLevel, AlertStatus, RuleSpec
from ferryman.registry.alerts import check_webhook_url

alerts_app = typer.Typer(rich_markup_mode=None)

LEVEL_STYLE = {AlertLevel.CRITICAL: "bold red", AlertLevel.WARNING: "yellow"}


@alerts_app.callback(invoke_without_command=True)
def alerts(ctx: typer.Context) -> None:
    """Alerts: firing and past, rules (defaults and yours), webhooks. Alone: those firing."""
    if ctx.invoked_subcommand is None:
        list_alerts(ctx)


@alerts_app.command("list")
def list_alerts(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """Alerts firing now (or all, newest first)."""
    state = None if show_all else AlertStatus.FIRING
    found = cli_context(ctx).registry().alerts.find(state, endpoint, limit)
    if json_output:
        print_json(found)
        return
    title = "Alerts" if show_all else "Alerts firing"
    table = Table("id", "level", "rule", "endpoint/variant", "state", "value", "since",
                  "resolved", "message", title=title)  # fmt: skip
    for alert in found:
        table.add_row(
            str(alert.id), f"[{LEVEL_STYLE[alert.level]}]{alert.level.value}[/]", alert.rule,
            f"{alert.endpoint}/{alert.variant}", alert.state.value,
            "" if alert.value is None else f"{alert.value:.4g}", when(alert.started_at),
            when(alert.resolved_at), alert.message,
        )  # fmt: skip
    console.print(table if found else f"{title}: none")


@alerts_app.command("rules")
def list_rules(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """The rules in force: the defaults (or your overrides of them), then your own."""
    listing = rule_listing(cli_context(ctx).registry().alerts.rules())
    if json_output:
        print_json(listing)
        return
    table = Table("rule", "when", "for", "min samples", "level", "endpoint", "enabled", "origin",
                  "description", title="Alert rules")  # fmt: skip
    for rule in listing:
        origin = (
            "default" + (" (overridden)" if rule.overridden else "") if rule.default else "yours"
        )
        table.add_row(
            rule.name, f"{rule.series} {rule.comparison} {rule.threshold:g}",
            f"{rule.for_s:g} s" if rule.for_s else "", str(rule.min_samples or ""),
            rule.level.value, rule.endpoint or "all",
            "yes" if rule.enabled else "[dim]no[/]", origin, rule.description,
        )  # fmt: skip
    console.print(table)


@alerts_app.command("set-rule")
def set_rule(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Rule name (a default's name overrides it).")],
    series: Annotated[str, typer.Option(help=f"One of: {', '.join(SERIES)}.")],
    above: Annotated[float | None, typer.Option(help="Fires when the value is above.")] = None,
    below: Annotated[float | None, typer.Option(help="Fires when the value is below.")] = None,
    for_s: Annotated[float, typer.Option("--for", help="Seconds it must hold first.")] = 0.0,
    min_samples: Annotated[
        int,
        typer.Option(
            help="Fewest observations behind the value (labelled rows for accuracy and f1, "
            "rated completions for thumbs_up_rate, input rows for input_drift_psi, requests "
            "for qps, error_rate, p50_ms, p99_ms)."
        ),
    ] = 0,
    level: Annotated[AlertLevel, typer.Option(help="warning or critical.")] = AlertLevel.WARNING,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Keep it, but off.")] = False,
    description: Annotated[str, typer.Option(help="What it means, for whoever is paged.")] = "",
) -> None:
    """Add or change a rule, e.g.: set-rule slow --series p99_ms --above 500 --for 60"""
    if (above is None) == (below is None):
        raise InvalidInput("give exactly one of --above VALUE or --below VALUE")
    spec = RuleSpec(
        series=series, comparison=">" if above is not None else "<",
        threshold=above if above is not None else below, for_s=for_s,
        min_samples=min_samples, level=level,
        endpoint=endpoint, enabled=not disable, description=description,
    )  # fmt: skip
    state = cli_context(ctx)
    state.registry().alerts.put_rule(name, spec, state.settings.user)
    console.print(f"Rule [bold]{name}[/]: {series} {spec.comparison} {spec.threshold:g}"
                  + ("" if spec.enabled else " (disabled)"))  # fmt: skip


@alerts_app.command("remove-rule")
def remove_rule(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Rule name.")]
) -> None:
    """Remove your rule, or your override of a default (which then applies again)."""
    state = cli_context(ctx)
    alerts = state.registry().alerts
    check_removable(name, alerts.rules())
    alerts.remove_rule(name, state.settings.user)
    console.print(f"Rule [bold]{name}[/] removed")


@alerts_app.command("webhooks")
def list_webhooks(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Where alert events are posted (secrets are never shown)."""
    found = cli_context(ctx).registry().alerts.webhooks()
    if json_output:
        print_json(found)
        return
    table = Table("webhook", "url", "updated by", "updated", title="Alert webhooks")
    for hook in found:
        table.add_row(hook.name, hook.url, hook.updated_by, when(hook.updated_at))
    console.print(table if found else "Alert webhooks: none")


@alerts_app.command("set-webhook")
def set_webhook(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Webhook name.")],
    url: Annotated[str, typer.Argument(help="http(s) URL that receives alert events.")],
    secret_file: Annotated[
        Path | None,
        typer.Option(help="File holding the signing secret; asked for (hidden) if absent."),
    ] = None,
    keep_secret: Annotated[
        bool, typer.Option("--keep-secret", help="Change the URL, keep the secret.")
    ] = False,
) -> None:
    """Add or change a webhook; deliveries are signed with its secret (see the README)."""
    secret = None
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read {secret_file}: {exc.strerror}") from None
    elif not keep_secret:
        secret = typer.prompt("Signing secret (16-256 characters)", hide_input=True)
    state = cli_context(ctx)
    OutboundPolicy.from_settings(state.settings).check_url(check_webhook_url(url))
    hook = state.registry().alerts.put_webhook(name, url, secret, state.settings.user)
    console.print(f"Webhook [bold]{hook.name}[/] posts alert events to {hook.url}")


@alerts_app.command("remove-webhook")
def remove_webhook(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Webhook name.")]
) -> None:
    """Stop posting alert events to a webhook."""
    state = cli_context(ctx)
    state.registry().alerts.remove_webhook(name, state.settings.user)
    console.print(f"Webhook [bold]{name}[/] removed")
