"""``ferryman gateway``: the one address of all endpoints, in the foreground until SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import errors
from ferryman.gateway import create_gateway
from ferryman.gateway.server import build_server


def gateway(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    routes_file: Annotated[
        Path | None, typer.Option(help="Route table JSON (default DATA_DIR/routes.json).")
    ] = None,
) -> None:
    """Route /v2/models/ENDPOINT/... to the replicas the route table names."""
    settings = cli_context(ctx).given_settings
    changes = {"port": port, "host": host, "routes_file": routes_file}
    given = {key: value for key, value in changes.items() if value is not None}
    settings = settings.model_copy(update={"gateway": settings.gateway.model_copy(update=given)})
    app = create_gateway(settings)
    server = build_server(settings, app)
    config = settings.gateway
    source = app.route_file.path if app.route_file else "-"
    errors.print(
        f"gateway on http://{config.host}:{config.port}, routes from {source}",
        markup=False,
        highlight=False,
    )
    server.run()
