"""RELIABILITY S8 (CI part): the control plane over TLS with a test CA (trustme)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from ferryman import Client
from ferryman.config import ControlSettings, GatewaySettings, load_settings
from ferryman.control.server import BackgroundControlPlane, check_tls, load_or_create_token
from ferryman.errors import FerrymanError, InvalidInput
from ferryman.registry import Registry
from tests.support import free_port


def test_https_with_a_verified_certificate(tmp_path: Path) -> None:
    """The control plane the demo runs (:class:`BackgroundControlPlane`) serves HTTPS with the
    certificate and key of its settings, and the TLS profile (nothing before TLS 1.2)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))

    control = ControlSettings(port=free_port(), tls_cert_file=cert_file, tls_key_file=key_file)
    settings = load_settings(
        data_dir=tmp_path / "data", control=control, gateway=GatewaySettings(port=free_port())
    )
    registry = Registry.open(settings)
    token = load_or_create_token(settings.data_dir)
    plane = BackgroundControlPlane(settings, registry, token)
    assert plane.url == f"https://127.0.0.1:{control.port}"
    plane.start()
    try:
        assert Client.remote(plane.url, token.value, verify=str(ca_file)).list_models() == []
        with pytest.raises(FerrymanError, match="cannot reach"):
            Client.remote(plane.url, token.value).list_models()  # the test CA is not trusted
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(ca_file))
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(FerrymanError, match="cannot reach"):
            Client.remote(plane.url, token.value, verify=old).list_models()
    finally:
        plane.fleet_stop()
        plane.stop()
        registry.close()


def test_tls_needs_both_cert_and_key(tmp_path: Path) -> None:
    settings = load_settings(control=ControlSettings(tls_cert_file=tmp_path / "cert.pem"))
    with pytest.raises(InvalidInput, match="both"):
        check_tls(settings)
