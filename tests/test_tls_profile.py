"""The TLS profile of every Ferryman server (issue 14): a scan of the shipped server path
(each part's ``build_server`` from its settings with a certificate: the control plane's is
the one ``ferryman up`` and the demo's ``BackgroundControlPlane`` run; the gateway's; a
replica's) by protocol version and by every TLS 1.2 cipher suite this machine's OpenSSL can
offer, each alone.

TLS 1.0 and 1.1 are refused, and of TLS 1.2 only forward-secret AEAD suites are accepted.
Each probe is first shown to succeed against a permissive server, so a refusal is the
server's policy, not the client's inability (sslyze would bring its own legacy OpenSSL;
Python's OpenSSL 3 at security level 0 offers all but RC4, DES and export suites).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme
from starlette.applications import Starlette

from ferryman.config import ControlSettings, GatewaySettings, ServingSettings, Settings
from ferryman.connection_limits import GuardedServer
from ferryman.control.server import build_server as build_control
from ferryman.engines.onnx import OnnxEngine
from ferryman.gateway import Gateway
from ferryman.gateway.server import build_server as build_gateway
from ferryman.serving.server import build_server as build_replica
from tests.serving.conftest import affine_model, replica

if TYPE_CHECKING:
    from ssl import _Cipher  # typeshed's type of SSLContext.get_ciphers() items


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    server = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("127.0.0.1")
    cert, key = folder / "cert.pem", folder / "key.pem"
    server.cert_chain_pems[0].write_to_path(cert)
    server.private_key_pem.write_to_path(key)
    return cert, key


def _control(cert: Path, key: Path) -> GuardedServer:
    settings = Settings(control=ControlSettings(tls_cert_file=cert, tls_key_file=key))
    return build_control(settings, Starlette())


def _gateway(cert: Path, key: Path) -> GuardedServer:
    settings = Settings(gateway=GatewaySettings(tls_cert_file=cert, tls_key_file=key))
    return build_gateway(settings, Gateway(settings.gateway))


def _replica(cert: Path, key: Path) -> GuardedServer:
    settings = Settings(serving=ServingSettings(tls_cert_file=cert, tls_key_file=key))
    return build_replica(settings, replica(OnnxEngine(affine_model())))


@pytest.fixture(scope="module", params=[_control, _gateway, _replica], ids=lambda b: b.__name__)
def shipped(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[int]:
    """The port of a part's server with TLS on 127.0.0.1, built as the part builds it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    build: Callable[[Path, Path], GuardedServer] = request.param
    server = build(*certificate)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def permissive(certificate: tuple[Path, Path]) -> Iterator[int]:
    """A server that accepts anything its OpenSSL can: proves each probe can succeed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    with accepting(context) as port:
        yield port


@contextmanager
def accepting(context: ssl.SSLContext) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()


def handshake(port: int, version: ssl.TLSVersion, cipher: str | None = None) -> str | None:
    """The suite negotiated offering only ``version`` (and ``cipher``); None if refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the scan judges protocol and suites, not the cert
    context.minimum_version = context.maximum_version = version
    context.set_ciphers(f"{cipher or 'ALL:COMPLEMENTOFALL'}:@SECLEVEL=0")
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
            context.wrap_socket(sock) as tls,
        ):
            negotiated = tls.cipher()
            return negotiated[0] if negotiated else None
    except (ssl.SSLError, OSError):
        return None


def tls12_suites() -> list[_Cipher]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return [c for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_before_1_2_is_refused(shipped: int, permissive: int, version: ssl.TLSVersion) -> None:
    assert handshake(permissive, version) is not None  # the probe itself works
    assert handshake(shipped, version) is None


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_served(shipped: int, version: ssl.TLSVersion) -> None:
    assert handshake(shipped, version) is not None


def test_only_forward_secret_aead_suites_are_accepted(shipped: int, permissive: int) -> None:
    accepted, offerable = [], 0
    for suite in tls12_suites():
        name = str(suite["name"])
        if handshake(permissive, ssl.TLSVersion.TLSv1_2, name) is None:
            continue  # this client and certificate (RSA) cannot negotiate it at all
        offerable += 1
        if handshake(shipped, ssl.TLSVersion.TLSv1_2, name) is not None:
            accepted.append(suite)
    assert offerable >= 15  # CBC, SHA-1, static RSA, CAMELLIA, ARIA… were all tried
    assert accepted, "no TLS 1.2 suite at all"
    weak = [s["name"] for s in accepted
            if not s["aead"] or s["kea"] not in ("kx-ecdhe", "kx-dhe")]  # fmt: skip
    assert weak == []
