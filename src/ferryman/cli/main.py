"""The ``ferryman`` command: global options, the command tree, and one-line errors."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer
from pydantic import ValidationError

from ferryman.cli.context import CliContext
from ferryman.cli.logs import configure_logging
from ferryman.cli.output import errors
from ferryman.config import load_settings
from ferryman.errors import FerrymanError, describe_problem
from ferryman.version import __version__

COMMANDS: tuple[tuple[str, str, str], ...] = (  # (name on the line, module, attribute)
    ("register", "registry", "register"),
    ("models", "registry", "models_app"),
    ("versions", "registry", "versions_app"),
    ("alias", "registry", "alias_app"),
    ("events", "registry", "events"),
    ("train", "train", "train"),
    ("tune", "train", "tune"),
    ("runs", "train", "runs_app"),
    ("demo", "demo", "demo"),
    ("up", "up", "up"),
    ("down", "down", "down"),
    ("deploy", "deploy", "deploy"),
    ("scale", "deploy", "scale"),
    ("undeploy", "deploy", "undeploy"),
    ("endpoints", "deploy", "endpoints_app"),
    ("rollout", "rollout", "rollout_app"),
    ("policy", "policy", "policy_app"),
    ("serve", "serve", "serve"),
    ("gateway", "gateway", "gateway"),
    ("payloads", "payloads", "payloads"),
    ("feedback", "payloads", "feedback"),
    ("quality", "payloads", "quality"),
    ("alerts", "alerts", "alerts_app"),
    ("export", "export", "export_app"),
    ("tokens", "tokens", "tokens_app"),
    ("capacity", "capacity", "capacity"),
    ("recommend", "capacity", "recommend_command"),
    ("cost", "cost", "cost"),
)
"""The command tree. Each command's module is imported only when the tree is built with it:
a replica (``ferryman serve``) starts without the modules of the other commands (measured:
half its start-up time and a third of its memory were the control plane, dashboard and SDK
it never uses)."""
LEAN_COMMANDS = frozenset({"serve", "gateway"})
"""Commands that run as long-lived processes of the data plane: the line builds only them."""


def build_app(only: str | None = None) -> typer.Typer:
    """The ``ferryman`` command with every command, or with ``only`` that one."""
    app = typer.Typer(
        rich_markup_mode=None,
        name="ferryman",
        help="Take models from training to production and keep them current there.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
    )
    app.callback()(root)
    for name, module_name, attribute in COMMANDS:
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"ferryman.cli.{module_name}")
        value = getattr(module, attribute)
        if isinstance(value, typer.Typer):
            app.add_typer(value, name=name)
        else:
            app.command(name)(value)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole command tree, built on first use (tests and documentation)."""
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


GLOBAL_OPTIONS = ("--data-dir", "--database-url", "--log-level", "--log-format")
GLOBAL_FLAGS = ("--insecure-http",)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ferryman {__version__}")
        raise typer.Exit


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
    command = _command_of(args)
    app = build_app(command if command in LEAN_COMMANDS else None)
    try:
        app(args=args, prog_name="ferryman")
    except FerrymanError as exc:
        _fail(exc.message)
    except ValidationError as exc:  # a value given on the line or in the settings
        _fail(describe_problem(exc.errors()[0]))


def _fail(message: str) -> NoReturn:
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(1)


def _command_of(args: list[str]) -> str | None:
    """The command named on a hoisted line (global options come first), if any."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in GLOBAL_OPTIONS:
            index += 2
        elif arg.startswith("-"):
            index += 1
        else:
            return arg
    return None
