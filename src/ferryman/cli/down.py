"""``ferryman down``: stop the replicas and the gateway that this data dir runs."""

from __future__ import annotations

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.control.loop import ControlLoop


def down(ctx: typer.Context) -> None:
    """Drain and stop every replica and the gateway (a running `ferryman up` restarts them)."""
    state = cli_context(ctx)
    stopped = ControlLoop(state.settings, state.registry()).shut_down_data_plane()
    console.print(f"Stopped {stopped} replicas and the gateway")
