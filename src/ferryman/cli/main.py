"""The ``ferryman`` command: global options, the command tree, and one-line errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer
from pydantic import ValidationError

from ferryman import __version__
from ferryman.cli import (
    alerts,
    capacity,
    cost,
    demo,
    deploy,
    down,
    export,
    gateway,
    payloads,
    policy,
    registry,
    rollout,
    serve,
    tokens,
    train,
    up,
)
from ferryman.cli.context import CliContext
from ferryman.cli.logs import configure_logging
from ferryman.cli.output import errors
from ferryman.config import load_settings
from ferryman.errors import FerrymanError, describe_problem

app = typer.Typer(
    rich_markup_mode=None,
    name="ferryman",
    help="Take models from training to production and keep them current there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
app.command("register")(registry.register)
app.add_typer(registry.models_app, name="models")
app.add_typer(registry.versions_app, name="versions")
app.add_typer(registry.alias_app, name="alias")
app.command("events")(registry.events)
app.command("train")(train.train)
app.command("tune")(train.tune)
app.add_typer(train.runs_app, name="runs")
app.command("demo")(demo.demo)
app.command("up")(up.up)
app.command("down")(down.down)
app.command("deploy")(deploy.deploy)
app.command("scale")(deploy.scale)
app.command("undeploy")(deploy.undeploy)
app.add_typer(deploy.endpoints_app, name="endpoints")
app.add_typer(rollout.rollout_app, name="rollout")
app.add_typer(policy.policy_app, name="policy")
app.command("serve")(serve.serve)
app.command("gateway")(gateway.gateway)
app.command("payloads")(payloads.payloads)
app.command("feedback")(payloads.feedback)
app.command("quality")(payloads.quality)
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(export.export_app, name="export")
app.add_typer(tokens.tokens_app, name="tokens")
app.command("capacity")(capacity.capacity)
app.command("recommend")(capacity.recommend_command)
app.command("cost")(cost.cost)

GLOBAL_OPTIONS = ("--data-dir", "--database-url", "--log-level", "--log-format")
GLOBAL_FLAGS = ("--insecure-http",)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ferryman {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data dir [env FERRYMAN_DATA_DIR; default ./ferryman-data if it exists, else "
            "the running control plane's, else a new ./ferryman-data]."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Registry database URL [env FERRYMAN_DATABASE_URL; default the SQLite file "
            "registry.db in the data dir]."
        ),
    ] = None,
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None, typer.Option(help="Log level.")
    ] = None,
    log_format: Annotated[
        Literal["console", "json"] | None, typer.Option(help="Log line format.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="Serve plain HTTP off loopback (no TLS); warned at start "
            "[env FERRYMAN_CONNECTIONS__INSECURE_HTTP].",
        ),
    ] = False,
) -> None:
    """Global options apply to every command and may be given anywhere on the line."""
    if insecure_http:  # by the environment, so the gateway and replicas it starts see it too
        os.environ["FERRYMAN_CONNECTIONS__INSECURE_HTTP"] = "true"
    settings = load_settings(
        data_dir=data_dir, database_url=database_url, log_level=log_level, log_format=log_format
    )
    configure_logging(settings)
    state = CliContext(settings)
    ctx.obj = state
    ctx.call_on_close(state.close)


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options to the front, so ``ferryman versions list m --data-dir d`` works."""
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg in GLOBAL_OPTIONS and index + 1 < len(args):
            hoisted += args[index : index + 2]
            index += 2
            continue
        is_global = arg in GLOBAL_FLAGS or (arg.split("=", 1)[0] in GLOBAL_OPTIONS and "=" in arg)
        (hoisted if is_global else rest).append(arg)
        index += 1
    return hoisted + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: errors become one line on stderr and exit 1."""
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="ferryman")
    except FerrymanError as exc:
        _fail(exc.message)
    except ValidationError as exc:  # a value given on the line or in the settings
        _fail(describe_problem(exc.errors()[0]))


def _fail(message: str) -> NoReturn:
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(1)
