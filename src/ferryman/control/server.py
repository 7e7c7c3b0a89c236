"""``ferryman up``: the control-plane API server, bound safely by default.

Connections keep the shared deadlines and cap of :mod:`ferryman.connection_limits`.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import uvicorn

from ferryman.capacity.jobs import CapacityJobs
from ferryman.config import Settings
from ferryman.connection_limits import App, GuardedServer, is_loopback, port_is_free, server_config
from ferryman.control.api.app import create_app
from ferryman.control.api.security import Token, load_or_create_token
from ferryman.control.fleet import check_fleet, running_fleet
from ferryman.control.loop import ControlLoop
from ferryman.errors import InvalidInput, Unavailable
from ferryman.registry import Registry

logger = logging.getLogger(__name__)


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback bind without auth, unless insecurity is asked for by name."""
    control = settings.control
    if is_loopback(control.host) or control.auth_required or control.allow_insecure_bind:
        return
    raise InvalidInput(
        f"refusing to listen on {control.host} without authentication; keep auth on "
        "(the default), bind 127.0.0.1, or set control.allow_insecure_bind if you mean it"
    )


def check_tls(settings: Settings) -> None:
    control = settings.control
    if (control.tls_cert_file is None) != (control.tls_key_file is None):
        raise InvalidInput("TLS needs both tls_cert_file and tls_key_file")


def check_ports(settings: Settings) -> None:
    """Refuse to start when the API's or the gateway's port is taken (by anything but this
    data dir's own gateway, which the loop re-adopts)."""
    control, gateway = settings.control, settings.gateway
    if not port_is_free(control.host, control.port):
        raise Unavailable(
            f"port {control.port} (the control plane's API) is in use; stop what holds it or "
            f"pick another: ferryman up --port {control.port + 1} (or FERRYMAN_CONTROL__PORT)"
        )
    if not port_is_free(gateway.host, gateway.port) and not answers_as_gateway(settings):
        raise Unavailable(
            f"port {gateway.port} (the gateway's) is in use by another program; free it or "
            f"pick another: ferryman up --gateway-port {gateway.port + 1} (or "
            "FERRYMAN_GATEWAY__PORT)"
        )


def answers_as_gateway(settings: Settings) -> bool:
    """True if a Ferryman gateway (one left serving, which the loop re-adopts) holds the
    gateway's port."""
    url = f"http://{settings.gateway.host}:{settings.gateway.port}/-/healthz"
    try:
        return bool(httpx.get(url, timeout=1.0).status_code == 200)
    except httpx.HTTPError:
        return False


class FleetStop:
    """What ``POST /api/v1/fleet/stop`` does: stop the loop's passes first, so that nothing
    restarts what is stopped next, then every replica and the gateway, then the API."""

    def __init__(self, loop: ControlLoop) -> None:
        self._loop = loop
        self.server: uvicorn.Server | None = None
        self.done = threading.Event()
        """Set once the fleet is stopped: the control plane's process may end."""

    def __call__(self) -> int:
        stopped = self._loop.stop_fleet()
        self.done.set()
        if self.server is not None:
            self.server.should_exit = True  # the answer in flight is still sent
        return stopped


def open_registry(settings: Settings, *, adopt: bool = False) -> Registry:
    """The registry for a control plane of this data dir; refuses another's running fleet.

    With ``adopt`` a running fleet of another registry is taken over (and reconciled to this
    registry's deployments); without it, see :func:`~ferryman.control.fleet.check_fleet`.
    """
    registry = Registry.open(settings)
    try:
        fleet = running_fleet(settings)
        identity = registry.identity()
        if adopt and fleet.is_running:
            logger.warning("adopting the running fleet for registry %s", identity)
        elif not adopt:
            check_fleet(fleet, identity, registry.is_new)
    except BaseException:
        registry.close()
        raise
    return registry


def run_control_plane(settings: Settings, token: Token, registry: Registry) -> None:
    """Serve the API over ``registry`` (see :func:`open_registry`) until interrupted (or
    ``ferryman down``)."""
    check_bind(settings)
    check_tls(settings)
    token_value = token.value if settings.control.auth_required else None
    loop = ControlLoop(settings, registry, control_token=token_value)
    fleet_stop = FleetStop(loop)
    app = create_app(
        settings,
        registry,
        token_value,
        history=loop.monitor.history,
        fleet_stop=fleet_stop,
        routes=loop.routes,
    )
    server = build_server(settings, app)
    fleet_stop.server = server
    loop.start()
    server.run()
    app.state.capacity_jobs.stop()
    loop.stop()
    registry.close()


def build_server(settings: Settings, app: App) -> GuardedServer:
    """The API's server over ``app`` on the control settings' host and port, over HTTPS
    with their certificate and key (not started): the one ``ferryman up`` and
    :class:`BackgroundControlPlane` (the demo's) both run."""
    return GuardedServer(server_config(app, settings.control, log_level="warning"),
                         settings.connections)  # fmt: skip


class BackgroundControlPlane:
    """What ``ferryman up`` runs — the API and the control loop — in threads of this process.

    For programs that drive Ferryman and want its API beside them (the demo, tests).
    """

    def __init__(
        self, settings: Settings, registry: Registry, token: Token, *, adopt: bool = False
    ) -> None:
        check_bind(settings)
        check_tls(settings)
        if not adopt:
            check_fleet(running_fleet(settings), registry.identity(), registry.is_new)
        control = settings.control
        token_value = token.value if control.auth_required else None
        self.loop = ControlLoop(settings, registry, control_token=token_value)
        self.fleet_stop = FleetStop(self.loop)
        app = create_app(
            settings,
            registry,
            token_value,
            history=self.loop.monitor.history,
            fleet_stop=self.fleet_stop,
            routes=self.loop.routes,
        )
        self._server = build_server(settings, app)
        self._capacity_jobs: CapacityJobs = app.state.capacity_jobs
        self.fleet_stop.server = self._server
        self._thread = threading.Thread(target=self._server.run, name="ferryman-api", daemon=True)
        scheme = "https" if control.tls_cert_file else "http"
        self.url = f"{scheme}://{control.host}:{control.port}"
        self._is_stopped = False

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the loop and the API; returns once the API listens."""
        self.loop.start()
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.loop.stop()
                raise Unavailable(f"the control-plane API did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the API and the loop (once); replicas and the gateway keep serving."""
        if self._is_stopped:
            return
        self._is_stopped = True
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._capacity_jobs.stop()
        self.loop.stop()


__all__ = [
    "BackgroundControlPlane",
    "FleetStop",
    "check_bind",
    "check_ports",
    "is_loopback",
    "load_or_create_token",
    "open_registry",
    "run_control_plane",
]
