"""``ferryman demo``: the main job of the README."""

from __future__ import annotations

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.demo.story import run_demo


def demo(ctx: typer.Context) -> None:
    """Run the end-to-end story on the embedded default and narrate each step."""
    state = cli_context(ctx)
    run_demo(state.registry(), state.settings.user, state.settings.data_dir / "demo", console)
