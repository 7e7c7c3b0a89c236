"""``ferryman up``: the control-plane API server, bound safely by default."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from ferryman.config import Settings
from ferryman.control.api.app import create_app
from ferryman.control.api.security import Token, load_or_create_token
from ferryman.control.loop import ControlLoop
from ferryman.errors import InvalidInput
from ferryman.registry import Registry

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


def run_control_plane(settings: Settings, token: Token) -> None:
    """Serve the API in the foreground until interrupted."""
    check_bind(settings)
    check_tls(settings)
    registry = Registry.open(settings)
    app = create_app(settings, registry, token.value if settings.control.auth_required else None)
    loop = ControlLoop(settings, registry)
    loop.start()
    control = settings.control
    uvicorn.run(
        app,
        host=control.host,
        port=control.port,
        ssl_certfile=str(control.tls_cert_file) if control.tls_cert_file else None,
        ssl_keyfile=str(control.tls_key_file) if control.tls_key_file else None,
        log_level="warning",
        server_header=False,
    )
    loop.stop()
    registry.close()


__all__ = ["check_bind", "is_loopback", "load_or_create_token", "run_control_plane"]
