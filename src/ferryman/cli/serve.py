"""``ferryman serve``: run one replica in the foreground until SIGTERM, then drain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from ferryman.cli.context import cli_context
from ferryman.cli.output import errors
from ferryman.config import Settings
from ferryman.errors import Conflict
from ferryman.registry import VersionRef


def parse_target(target: str) -> tuple[str, VersionRef]:
    """``digits`` → latest, ``digits:3`` → version 3, ``digits@production`` → the alias."""
    if "@" in target:
        model, alias = target.split("@", 1)
        return model, alias
    if ":" in target:
        model, number = target.split(":", 1)
        if not number.isdigit():
            raise typer.BadParameter(f"version {number!r} is not a number; use MODEL:3")
        return model, int(number)
    return target, "latest"


def serve(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="MODEL[:VERSION|@ALIAS] from the registry, or a .onnx file.")
    ],
    variant: Annotated[
        str | None, typer.Option(help="Variant to serve, e.g. onnx-int8 (default: its own file).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default 8080].")] = None,
    host: Annotated[str | None, typer.Option(help="Interface [default 127.0.0.1].")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="Also serve V2 over gRPC here.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name for a .onnx file.")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer TOKEN' on every route but liveness. Prefer "
            "FERRYMAN_SERVING__TOKEN: every user can read a process's arguments (ps).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve one variant over the Open Inference Protocol V2 until SIGTERM, then drain."""
    # The data plane needs the "serve" extra; the rest of the CLI works without it.
    from ferryman.serving.app import create_app  # noqa: PLC0415
    from ferryman.serving.cpus import fit  # noqa: PLC0415
    from ferryman.serving.replica import (  # noqa: PLC0415
        from_file,
        from_registry,
        generation_from_registry,
        is_generative,
    )
    from ferryman.serving.server import serve as run_server  # noqa: PLC0415

    state = cli_context(ctx)
    is_file = target.endswith(".onnx") or Path(target).is_file()
    given = state.given_settings if is_file else state.settings  # a file needs no data dir
    secret = SecretStr(token) if token is not None else None
    settings = _with_serving(given, port=port, host=host, grpc_port=grpc_port, token=secret)
    threads = fit(settings.serving).intra_op_threads
    if is_file:
        source = from_file(Path(target), name, threads)
    else:
        model, ref = parse_target(target)
        registry = state.registry()
        if is_generative(registry, model, ref):
            from ferryman.serving.openai import create_generation_app  # noqa: PLC0415

            generation = generation_from_registry(registry, model, ref, settings.bundles_dir)
            state.close()
            errors.print(
                f"serving {generation.identity.describe()} (OpenAI-compatible /v1) on "
                f"http://{settings.serving.host}:{settings.serving.port}",
                markup=False,
                highlight=False,
            )
            run_server(
                settings, create_generation_app(settings, generation.engine, generation.identity)
            )
            return
        source = from_registry(state.registry(), model, ref, variant, threads)
        check_registry(settings.registry_id, source.identity.registry)
        state.close()  # no database in the request path
    app = create_app(settings, source.runtime, source.identity, source.reference)
    serving = settings.serving
    grpc = f" and grpc://{serving.host}:{serving.grpc_port}" if serving.grpc_port else ""
    errors.print(
        f"serving {source.identity.describe()} on http://{serving.host}:{serving.port}{grpc}",
        markup=False,
        highlight=False,
    )
    run_server(settings, app)


def check_registry(wanted: str | None, found: str) -> None:
    """Refuse to serve from another registry than the control plane that started us has."""
    if wanted and wanted != found:
        raise Conflict(
            f"this replica was started for registry {wanted}, but its database is registry "
            f"{found}; check FERRYMAN_DATABASE_URL"
        )


def _with_serving(settings: Settings, **changes: object) -> Settings:
    given = {key: value for key, value in changes.items() if value is not None}
    if not given:
        return settings
    return settings.model_copy(update={"serving": settings.serving.model_copy(update=given)})
