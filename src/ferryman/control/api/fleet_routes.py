"""``/api/v1/fleet``: what runs the endpoints, as one thing — ``ferryman down`` asks here."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.errors import Conflict

router = APIRouter(prefix="/api/v1/fleet")

FleetStopper = Callable[[], int]
"""Stops the control loop, then every replica and the gateway; how many replicas ran."""


class FleetStopped(BaseModel):
    stopped_replicas: int
    control_plane: str = "stopping"


@router.post("/stop")
def stop_fleet(request: Request, registry: RegistryDep, actor: ActorDep) -> FleetStopped:
    """Stop the control loop first (so it restarts nothing), then every replica and the
    gateway, then this control plane. Deployments stay as they are: `ferryman up` brings
    the endpoints back."""
    stop: FleetStopper | None = request.app.state.fleet_stop
    if stop is None:
        raise Conflict(
            "this API runs without a control loop, so it has no fleet to stop; run "
            "`ferryman down` on its data dir instead"
        )
    stopped = stop()
    registry.record_event(actor, "fleet.stopped", ("fleet", "local", None),
                          {"replicas": stopped})  # fmt: skip
    return FleetStopped(stopped_replicas=stopped)
