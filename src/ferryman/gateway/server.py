"""Running the gateway in the foreground: uvicorn with uvloop and httptools.

Connections keep the shared deadlines and cap of :mod:`ferryman.connection_limits`.
"""

from __future__ import annotations

from ferryman.config import Settings
from ferryman.connection_limits import GuardedServer, is_loopback, server_config
from ferryman.errors import Forbidden
from ferryman.gateway.app import Gateway
from ferryman.gateway.fastlane import GatewayHttpProtocol


def build_server(settings: Settings, gateway: Gateway) -> GuardedServer:
    """A server for ``gateway`` on the settings' host and port (not started).

    A non-loopback bind is refused unless ``gateway.allow_insecure_bind`` is set: the
    gateway forwards to replicas without a token of its own (RELIABILITY S2).
    """
    config = settings.gateway
    if not (is_loopback(config.host) or config.allow_insecure_bind):
        raise Forbidden(
            f"gateway host {config.host!r} is not loopback and the gateway has no auth; bind "
            "127.0.0.1, or set gateway.allow_insecure_bind behind a proxy that authenticates"
        )
    return GuardedServer(
        server_config(gateway, config, graceful_timeout_s=int(config.request_timeout_s)),
        settings.connections,
        fds_per_connection=2,  # a client's request holds a connection to a replica too
        protocol=GatewayHttpProtocol,  # model requests skip the ASGI layers (fastlane.py)
    )
