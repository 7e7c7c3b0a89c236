"""Off loopback means TLS (issue 14): every server refuses plain HTTP on a non-loopback
address unless --insecure-http says so, and then warns at start."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import uvicorn

from ferryman.config import ConnectionSettings, GatewaySettings, ServingSettings, Settings
from ferryman.connection_limits import GuardedServer
from ferryman.engines.onnx import OnnxEngine
from ferryman.errors import InvalidInput
from ferryman.gateway import Gateway
from ferryman.gateway.server import build_server as build_gateway
from ferryman.serving.server import build_server as build_replica
from tests.serving.conftest import affine_model, replica

WILDCARD = "0.0.0.0"


async def nothing(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize("host", [WILDCARD, "::", "192.0.2.10", "example.com"])
def test_a_plain_http_bind_off_loopback_is_refused(host: str) -> None:
    with pytest.raises(InvalidInput, match="refusing to serve plain HTTP") as refused:
        GuardedServer(uvicorn.Config(nothing, host=host), ConnectionSettings())
    assert "--insecure-http" in refused.value.message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_tls(host: str) -> None:
    GuardedServer(uvicorn.Config(nothing, host=host), ConnectionSettings())


def test_insecure_http_starts_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    GuardedServer(uvicorn.Config(nothing, host=WILDCARD), ConnectionSettings(insecure_http=True))
    assert "serving plain HTTP on 0.0.0.0 off loopback (--insecure-http)" in caplog.text


def test_the_gateway_and_a_replica_refuse_it_too(tmp_path: Path) -> None:
    gateway = Settings(gateway=GatewaySettings(host=WILDCARD, allow_insecure_bind=True))
    with pytest.raises(InvalidInput, match="refusing to serve plain HTTP"):
        build_gateway(gateway, Gateway(gateway.gateway))
    serving = Settings(serving=ServingSettings(host=WILDCARD, is_remote_without_auth_allowed=True))
    with pytest.raises(InvalidInput, match="refusing to serve plain HTTP"):
        build_replica(serving, replica(OnnxEngine(affine_model())))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.e2e
def test_ferryman_up_on_all_interfaces_needs_tls_or_insecure_http(tmp_path: Path) -> None:
    ferryman = str(Path(sys.executable).with_name("ferryman"))
    port = _free_port()
    env = {**os.environ, "FERRYMAN_DATA_DIR": str(tmp_path / "data"),
           "FERRYMAN_GATEWAY__PORT": str(_free_port())}  # fmt: skip
    refused = subprocess.run(
        [ferryman, "up", "--host", WILDCARD, "--port", str(port)],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "refusing to serve plain HTTP on '0.0.0.0'" in refused.stderr
    process = subprocess.Popen(
        [ferryman, "up", "--host", WILDCARD, "--port", str(port), "--insecure-http"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        warned = ""
        while "off loopback (--insecure-http)" not in warned and time.monotonic() < deadline:
            warned += process.stderr.readline()
        assert "serving plain HTTP on 0.0.0.0 off loopback (--insecure-http)" in warned
    finally:
        process.terminate()
        process.wait(timeout=10)
        gateway_file = tmp_path / "data" / "gateway.json"
        if gateway_file.exists():
            os.kill(json.loads(gateway_file.read_text())["pid"], signal.SIGTERM)
