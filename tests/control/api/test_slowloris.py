"""RELIABILITY B8 on a control-plane process (``ferryman up``): slow heads and bodies."""

from __future__ import annotations

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
    with server_process(
        ["--data-dir", str(folder), "up", "--port", str(port)], address, "/healthz"
    ) as pid:
        token = (folder / "control-token").read_text().strip()
        normal = NormalRequest("GET", "/api/v1/models", None, {"authorization": f"Bearer {token}"})
        # A POST there is refused (401) before its body is read: the body rule closes it.
        yield Target(address, pid, normal, "/api/v1/models", "/healthz")


def test_slow_heads_and_bodies_neither_fail_nor_slow_normal_requests(tmp_path: Path) -> None:
    with control_plane(tmp_path) as target:
        report = attack(target, connections=200, seconds=22)
    check(report, ConnectionSettings())


@pytest.mark.soak
def test_soak_500_slow_heads_and_500_slow_bodies_for_two_minutes(tmp_path: Path) -> None:
    with control_plane(tmp_path) as target:
        report = attack(target, connections=500, seconds=120)
    check(report, ConnectionSettings())
