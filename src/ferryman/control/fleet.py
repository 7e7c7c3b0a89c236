"""Which registry the running fleet belongs to, and the refusal to act on another's.

Every part of the fleet carries the identity of the registry whose control plane started
it: each replica's state file (and the replica itself, on ``/v2/health/live``), the
gateway's state file and the route table. A control plane that starts on a database that
is another registry, or on a registry it has just created while a fleet runs (a mistyped
``--database-url``, a deleted ``registry.db``), would otherwise find no deployments and
stop every replica. :func:`check_fleet` refuses that in one line, unless told to adopt.
"""

from __future__ import annotations

from ferryman.config import Settings
from ferryman.errors import Conflict
from ferryman.runtimes import Fleet, create_runtime


def running_fleet(settings: Settings) -> Fleet:
    """The fleet of these settings' runtime, as the runtime sees it (nothing is signalled)."""
    runtime = create_runtime(settings)
    try:
        return runtime.running_fleet()
    finally:
        runtime.close()


def check_fleet(fleet: Fleet, registry_id: str, is_new: bool) -> None:
    """Raise :class:`Conflict` if a control plane on this registry must not act on ``fleet``.

    >>> check_fleet(Fleet(2, True, frozenset({"a"})), "a", is_new=False)
    >>> check_fleet(Fleet(0, False, frozenset({"a"})), "b", is_new=True)
    """
    if not fleet.is_running:
        return
    others = sorted(fleet.registries - {registry_id, ""})
    if not others and not is_new:
        return
    owner = ", ".join(others) if others else "unknown (recorded before identities)"
    this = f"{registry_id} (new)" if is_new else registry_id
    parts = [f"{fleet.replicas} replicas"] + (["the gateway"] if fleet.has_gateway else [])
    raise Conflict(
        f"the running fleet ({' and '.join(parts)}) belongs to registry {owner}; this one is "
        f"{this} — start with the right --database-url, or --adopt to take the fleet over, "
        "or use a fresh data dir"
    )
