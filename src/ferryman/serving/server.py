"""Running a replica in the foreground: uvicorn (uvloop, httptools) with a graceful drain.

Connections keep the shared deadlines and cap of :mod:`ferryman.connection_limits`.

On SIGTERM or SIGINT the replica turns not-ready at once (new requests on open connections
get 503 with Retry-After, so a router retries elsewhere), stops accepting connections,
lets in-flight requests finish within ``drain_timeout_s`` and exits 0.
"""

from __future__ import annotations

import gc
import logging
import signal
from socket import socket
from types import FrameType
from typing import Protocol

import uvicorn
from starlette.applications import Starlette

from ferryman.config import ConnectionSettings, Settings
from ferryman.connection_limits import GuardedServer, is_loopback, server_config
from ferryman.errors import Forbidden
from ferryman.serving.metrics import ReplicaIdentity

logger = logging.getLogger(__name__)


class Drainable(Protocol):
    """What the server tells to drain: a tensor data plane or a generation plane."""

    is_draining: bool

    @property
    def identity(self) -> ReplicaIdentity: ...


class DrainingServer(GuardedServer):
    """A uvicorn server that marks its data plane draining before it stops."""

    def __init__(
        self, config: uvicorn.Config, plane: Drainable, limits: ConnectionSettings
    ) -> None:
        super().__init__(config, limits)
        self.plane = plane

    async def startup(self, sockets: list[socket] | None = None) -> None:
        """Start (the model loads in the app's lifespan), then freeze what start-up made.

        Everything alive now (modules, the model's session, settings) lives as long as the
        process; frozen, the cyclic collector never walks it again. Without this each full
        collection walked ~120,000 start-up objects: measured 25% of a replica's CPU time
        under load.
        """
        await super().startup(sockets)
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.plane.is_draining:
            logger.warning("signal %d: draining %s", sig, self.plane.identity.describe())
        self.plane.is_draining = True
        super().handle_exit(sig, frame)


def build_server(settings: Settings, app: Starlette) -> DrainingServer:
    """A server for ``app`` on the settings' host and port (not started)."""
    serving = settings.serving
    # A replica with a token (the fleet secret) refuses everyone but the gateway and the
    # control plane, so it may listen on its node's address (the Ray runtime's replicas).
    check_bind(serving.host, serving.is_remote_without_auth_allowed or serving.token is not None)
    config = server_config(app, serving, graceful_timeout_s=serving.drain_timeout_s)
    plane: Drainable = app.state.plane
    return DrainingServer(config, plane, settings.connections)


def check_bind(host: str, is_remote_allowed: bool) -> None:
    """Refuse a non-loopback bind unless it was allowed (a token, or explicitly)."""
    if not (is_loopback(host) or is_remote_allowed):
        raise Forbidden(
            f"refusing to listen on {host!r} without a token: set FERRYMAN_SERVING__TOKEN "
            "(`ferryman up` gives its replicas the fleet secret), or "
            "FERRYMAN_SERVING__IS_REMOTE_WITHOUT_AUTH_ALLOWED=true (behind a gateway or "
            "firewall you trust) to listen there without one"
        )


def serve(settings: Settings, app: Starlette) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then drain and return (the process exits 0)."""
    # uvicorn raises the signal again once it has drained, to the handlers it found; a
    # finished drain is a clean exit, so those handlers are quiet ones while it runs.
    previous = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        build_server(settings, app).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drained(sig: int, frame: FrameType | None) -> None:
    logger.info("drained after signal %d", sig)
