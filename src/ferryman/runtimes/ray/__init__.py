"""The ``ray`` runtime: replicas and gateways as Ray actors placed across a cluster.

Needs the ``ray`` extra (``pip install 'ferryman[ray]'``); chosen by
``control.runtime = "ray"`` with ``ray.address`` and a ``ray.namespace`` per fleet.
"""

from ferryman.runtimes.ray.runtime import RayRuntime, check_cluster

__all__ = ["RayRuntime", "check_cluster"]
