"""RELIABILITY B8 on a control-plane process (``ferryman up``): slow heads and bodies."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ferryman.config import ConnectionSettings
from tests.slowloris import NormalRequest, Target, attack, check, needs_slowhttptest, server_process
from tests.support import free_port

pytestmark = [pytest.mark.e2e, needs_slowhttptest]


@contextmanager
def control_plane(folder: Path) -> Iterator[Target]:
    port = free_port()
    address = ("127.0.0.1", port)
    data = ["--data-dir", str(folder)]
    # Its own gateway port: `up` starts a gateway, and 8000 is the demo's (and a user's).
    up = [*data, "up", "--port", str(port), "--gateway-port", str(free_port())]
    try:
        with server_process(up, address, "/healthz") as pid:
            token = (folder / "control-token").read_text().strip()
            auth = {"authorization": f"Bearer {token}"}
            normal = NormalRequest("GET", "/api/v1/models", None, auth)
            # A POST there is refused (401) before its body is read: the body rule closes it.
            yield Target(address, pid, normal, "/api/v1/models", "/healthz")
    finally:  # the gateway runs in a session of its own and outlives `up`
        subprocess.run([sys.executable, "-m", "ferryman", *data, "down"], check=False,
                       capture_output=True, timeout=60)  # fmt: skip


def test_slow_heads_and_bodies_neither_fail_nor_slow_normal_requests(tmp_path: Path) -> None:
    with control_plane(tmp_path) as target:
        report = attack(target, connections=200, seconds=22)
    check(report, ConnectionSettings())


@pytest.mark.soak
def test_soak_500_slow_heads_and_500_slow_bodies_for_two_minutes(tmp_path: Path) -> None:
    with control_plane(tmp_path) as target:
        report = attack(target, connections=500, seconds=120)
    check(report, ConnectionSettings())
