"""RELIABILITY S8 (CI part): the control plane over TLS with a test CA (trustme)."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import pytest
import trustme
import uvicorn

from ferryman import Client
from ferryman.config import ControlSettings, load_settings
from ferryman.control.api.app import create_app
from ferryman.control.server import check_tls
from ferryman.errors import FerrymanError, InvalidInput
from ferryman.registry import Registry


def test_https_with_a_verified_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))

    settings = load_settings(data_dir=tmp_path / "data")
    registry = Registry.open(settings)
    config = uvicorn.Config(
        create_app(settings, registry, "secret-token"),
        host="127.0.0.1", port=0, log_level="warning",
        ssl_certfile=str(cert_file), ssl_keyfile=str(key_file),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}"
    try:
        assert Client.remote(url, "secret-token", verify=str(ca_file)).list_models() == []
        with pytest.raises(FerrymanError, match="cannot reach"):
            Client.remote(url, "secret-token").list_models()  # the test CA is not trusted
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(ca_file))
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(FerrymanError, match="cannot reach"):
            Client.remote(url, "secret-token", verify=old).list_models()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        registry.close()


def test_tls_needs_both_cert_and_key(tmp_path: Path) -> None:
    settings = load_settings(control=ControlSettings(tls_cert_file=tmp_path / "cert.pem"))
    with pytest.raises(InvalidInput, match="both"):
        check_tls(settings)
