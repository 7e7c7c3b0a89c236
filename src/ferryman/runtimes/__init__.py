"""Runtimes: where replicas run, behind one seam (:class:`~ferryman.runtimes.base.Runtime`).

``local`` supervises replica and gateway processes on this machine; ``memory`` holds pretend
replicas for tests. :func:`create_runtime` is the one place that picks one by its setting.
"""

from __future__ import annotations

from ferryman.config import Settings
from ferryman.errors import InvalidInput
from ferryman.runtimes.base import Replica, ReplicaSpec, ReplicaState, Runtime, replica_specs
from ferryman.runtimes.local import LocalRuntime

RUNTIMES = ("local",)


def create_runtime(settings: Settings) -> Runtime:
    """The runtime ``settings.control.runtime`` names."""
    name = settings.control.runtime
    if name == "local":
        return LocalRuntime(settings)
    raise InvalidInput(f"runtime {name!r} is not one of {', '.join(RUNTIMES)}")


__all__ = [
    "Replica",
    "ReplicaSpec",
    "ReplicaState",
    "Runtime",
    "create_runtime",
    "replica_specs",
]
