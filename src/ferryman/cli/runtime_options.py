"""``--runtime`` and ``--ray-address``: which runtime ``up`` runs the fleet on, and ``down``
stops it on (with no control plane running, ``down`` asks the runtime itself)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ferryman.config import Settings
from ferryman.errors import InvalidInput

RuntimeName = Literal["local", "ray"]

RuntimeOption = Annotated[
    RuntimeName | None,
    typer.Option(
        help="Where replicas run: processes on this machine, or actors on a Ray cluster "
        "[env FERRYMAN_CONTROL__RUNTIME; default local]."
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        help="The Ray cluster's head, HOST:PORT of its GCS (with --runtime ray) "
        "[env FERRYMAN_RAY__ADDRESS; default auto].",
        show_default=False,
    ),
]


def with_runtime(
    settings: Settings, runtime: RuntimeName | None, ray_address: str | None
) -> Settings:
    """``settings`` with the runtime and the Ray address given on the command line."""
    control = settings.control
    if runtime is not None:
        control = control.model_copy(update={"runtime": runtime})
    ray = settings.ray
    if ray_address is not None:
        if control.runtime != "ray":
            raise InvalidInput("--ray-address is for the Ray runtime: add --runtime ray")
        ray = ray.model_copy(update={"address": ray_address})
    return settings.model_copy(update={"control": control, "ray": ray})
