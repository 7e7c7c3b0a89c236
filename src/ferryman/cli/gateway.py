"""``ferryman gateway``: the one address of all endpoints, in the foreground until SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import errors
from ferryman.gateway import create_gateway
from ferryman.gateway.server import build_server
from ferryman.gateway.takeover import listening_socket


def gateway(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    routes_file: Annotated[
        Path | None, typer.Option(help="Route table JSON (default DATA_DIR/routes.json).")
    ] = None,
    shared_port: Annotated[
        bool,
        typer.Option(
            help="Share the port with other gateways started so: the oldest serves, the "
            "others are warm standbys that serve the moment it dies."
        ),
    ] = False,
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
    sockets = [listening_socket(config.host, config.port)] if shared_port else None
    errors.print(
        f"gateway on http://{config.host}:{config.port}, routes from {source}",
        markup=False,
        highlight=False,
    )
    server.run(sockets=sockets)
