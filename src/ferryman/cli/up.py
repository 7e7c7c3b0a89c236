"""``ferryman up``: start the control plane."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.cli.runtime_options import RayAddressOption, RuntimeOption, with_runtime
from ferryman.config import Settings
from ferryman.control.data_dir_lock import DataDirLock
from ferryman.control.server import (
    check_bind,
    check_ports,
    load_or_create_token,
    open_registry,
    run_control_plane,
)
from ferryman.runtimes import check_runtime


def up(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind [default 127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port of the API [default 7070].")
    ] = None,
    gateway_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port of the gateway [default 8000].")
    ] = None,
    adopt: Annotated[
        bool,
        typer.Option(help="Take over a running fleet that another registry's control plane ran."),
    ] = False,
    runtime: RuntimeOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Start the control plane: the API (bearer token, created on first start), the control
    loop, and the gateway. One per data dir; `ferryman down` stops it and its fleet.

    With --runtime ray, replicas and a gateway per node run as actors on the Ray cluster at
    --ray-address; a cluster of several nodes needs --database-url postgresql+psycopg://…
    and artifacts on S3 (FERRYMAN_ARTIFACTS__URL=s3://BUCKET/PREFIX)."""
    settings = _with_ports(cli_context(ctx).settings, host, port, gateway_port)
    settings = with_runtime(settings, runtime, ray_address)
    check_bind(settings)
    scheme = "https" if settings.control.tls_cert_file else "http"
    url = f"{scheme}://{settings.control.host}:{settings.control.port}"
    lock = DataDirLock(settings.data_dir, settings.state_dir, url)
    try:
        check_ports(settings)
        check_runtime(settings)  # a Ray cluster of several nodes: PostgreSQL and S3
        registry = open_registry(settings, adopt=adopt)  # one line and exit 1 if unusable
        token = load_or_create_token(settings.data_dir)
        gateway = settings.gateway
        console.print(f"Ferryman control plane on {url} (data dir {settings.data_dir})")
        console.print(f"  Dashboard: {url}/ui/ (log in with the API token)")
        console.print(f"  API schema: {url}/openapi.json (with the token)")
        if token.is_new:
            console.print(
                f"  API token (shown once; kept in {settings.data_dir}/control-token, mode 0600):"
            )
            console.print(f"  [bold]{token.value}[/]")
        if settings.control.runtime == "ray":
            console.print(
                f"  Gateways: http://NODE_ADDRESS:{gateway.port}/v2/models/ENDPOINT/infer, on "
                f"every node of the Ray cluster at {settings.ray.address}"
            )
        else:
            console.print(
                f"  Gateway: http://{gateway.host}:{gateway.port}/v2/models/ENDPOINT/infer"
            )
        run_control_plane(settings, token, registry)
    finally:
        lock.release()


def _with_ports(
    settings: Settings, host: str | None, port: int | None, gateway_port: int | None
) -> Settings:
    control = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    changes: dict[str, object] = {}
    if control:
        changes["control"] = settings.control.model_copy(update=control)
    if gateway_port is not None:
        changes["gateway"] = settings.gateway.model_copy(update={"port": gateway_port})
    return settings.model_copy(update=changes) if changes else settings
