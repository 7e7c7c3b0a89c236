"""Running the gateway in the foreground: uvicorn with uvloop and httptools.

Connections keep the shared deadlines and cap of :mod:`ferryman.connection_limits`.
"""

from __future__ import annotations

import importlib.util
import ipaddress

import uvicorn

from ferryman.config import Settings
from ferryman.connection_limits import GuardedServer
from ferryman.errors import Forbidden
from ferryman.gateway.app import Gateway
from ferryman.gateway.fastlane import GatewayHttpProtocol

LOOPBACK_HOSTS = frozenset({"localhost"})


def build_server(settings: Settings, gateway: Gateway) -> GuardedServer:
    """A server for ``gateway`` on the settings' host and port (not started).

    A non-loopback bind is refused unless ``gateway.allow_insecure_bind`` is set: the
    gateway forwards to replicas without a token of its own (RELIABILITY S2).
    """
    config = settings.gateway
    if not (_is_loopback(config.host) or config.allow_insecure_bind):
        raise Forbidden(
            f"gateway host {config.host!r} is not loopback and the gateway has no auth; bind "
            "127.0.0.1, or set gateway.allow_insecure_bind behind a proxy that authenticates"
        )
    return GuardedServer(
        uvicorn.Config(
            gateway,
            host=config.host,
            port=config.port,
            ssl_certfile=str(config.tls_cert_file) if config.tls_cert_file else None,
            ssl_keyfile=str(config.tls_key_file) if config.tls_key_file else None,
            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,  # the client's address is not trusted from headers
            timeout_graceful_shutdown=int(config.request_timeout_s),
        ),
        settings.connections,
        fds_per_connection=2,  # a client's request holds a connection to a replica too
        protocol=GatewayHttpProtocol,  # model requests skip the ASGI layers (fastlane.py)
    )


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
