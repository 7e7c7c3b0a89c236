"""``ferryman up``: start the control plane."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.control.server import check_bind, load_or_create_token, run_control_plane


def up(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [7070].")] = None,
) -> None:
    """Start the control-plane API (bearer token required; created on first start)."""
    settings = cli_context(ctx).settings
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    if overrides:
        control = settings.control.model_copy(update=overrides)
        settings = settings.model_copy(update={"control": control})
    check_bind(settings)
    token = load_or_create_token(settings.data_dir)
    scheme = "https" if settings.control.tls_cert_file else "http"
    url = f"{scheme}://{settings.control.host}:{settings.control.port}"
    console.print(f"Ferryman control plane on {url}")
    console.print(f"  Dashboard: {url}/ui/ (log in with the API token)")
    console.print(f"  API docs: {url}/docs")
    if token.is_new:
        console.print(
            f"  API token (shown once; kept in {settings.data_dir}/control-token, mode 0600):"
        )
        console.print(f"  [bold]{token.value}[/]")
    run_control_plane(settings, token)
