"""Runtimes: where replicas run, behind one seam (:class:`~ferryman.runtimes.base.Runtime`).

``local`` supervises replica and gateway processes on this machine; ``ray`` runs them as
actors on a Ray cluster (:mod:`ferryman.runtimes.ray`, which needs the ``ray`` extra);
``memory`` holds pretend replicas for tests. :func:`create_runtime` is the one place that
picks one by its setting.
"""

from __future__ import annotations

from ferryman.config import Settings
from ferryman.errors import InvalidInput
from ferryman.runtimes.base import (
    Fleet,
    Replica,
    ReplicaSpec,
    ReplicaState,
    Runtime,
    replica_specs,
)
from ferryman.runtimes.local import LocalRuntime

RUNTIMES = ("local", "ray")


def create_runtime(
    settings: Settings,
    control_token: str | None = None,
    registry_id: str = "",
    fleet_secret: str | None = None,
) -> Runtime:
    """The runtime ``settings.control.runtime`` names; ``control_token`` lets the ``ray``
    runtime's gateways read the route table from the control plane's API; ``registry_id``
    is the registry whose fleet it runs and ``fleet_secret`` what its replicas take from the
    gateway and the control plane only (both carried by every replica and gateway)."""
    name = settings.control.runtime
    if name == "local":
        return LocalRuntime(settings, registry_id=registry_id, fleet_secret=fleet_secret)
    if name == "ray":
        try:
            from ferryman.runtimes.ray import RayRuntime  # noqa: PLC0415 - ray is optional
        except ImportError as exc:
            raise _needs_ray(exc) from None
        return RayRuntime(settings, control_token, registry_id, fleet_secret)
    raise InvalidInput(f"runtime {name!r} is not one of {', '.join(RUNTIMES)}")


def check_runtime(settings: Settings) -> None:
    """Refuse, in one line, a runtime that cannot run this control plane's fleet: a Ray
    cluster of several nodes needs the registry on PostgreSQL and the artifacts on S3."""
    if settings.control.runtime == "ray":
        try:
            from ferryman.runtimes.ray import check_cluster  # noqa: PLC0415 - ray is optional
        except ImportError as exc:
            raise _needs_ray(exc) from None
        check_cluster(settings)


def _needs_ray(exc: ImportError) -> InvalidInput:
    return InvalidInput(
        f"runtime 'ray' needs Ray ({exc.name} cannot be imported); install the extra: "
        "pip install 'ferryman[ray]'"
    )


__all__ = [
    "Fleet",
    "Replica",
    "ReplicaSpec",
    "ReplicaState",
    "Runtime",
    "check_runtime",
    "create_runtime",
    "replica_specs",
]
