"""``ferryman demo``: the main job of the README."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.demo.story import run_demo


def demo(
    ctx: typer.Context,
    fast: Annotated[bool, typer.Option(help="Short training and windows (CI).")] = False,
    keep_serving: Annotated[
        bool | None, typer.Option(help="Leave the endpoint serving [yes, unless --fast].")
    ] = None,
) -> None:
    """Train, deploy and serve; a bad version is rolled back by itself, a good one promoted."""
    state = cli_context(ctx)
    keep = not fast if keep_serving is None else keep_serving
    outcome = run_demo(state.settings, console, fast=fast, keep_serving=keep)
    if outcome.tally.failed:
        raise typer.Exit(1)
