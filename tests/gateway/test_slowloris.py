"""RELIABILITY B8 on a gateway process in front of a replica process: slow heads and bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ferryman.config import ConnectionSettings
from tests.serving.conftest import replica_process
from tests.slowloris import Target, attack, check, needs_slowhttptest, server_process
from tests.support import free_port

pytestmark = [pytest.mark.e2e, needs_slowhttptest]


@contextmanager
def gateway(folder: Path) -> Iterator[Target]:
    """A gateway routing the endpoint ``affine`` to one replica of the affine model."""
    (folder / "replica").mkdir()
    with replica_process(folder / "replica") as replica:
        backend = "http://{}:{}".format(*replica.address)
        variant = {"name": "v1", "model": "affine", "version": 1, "weight": 100,
                   "backends": [backend]}  # fmt: skip
        routes = {"generation": 1, "endpoints": {"affine": {"endpoint": "affine",
                                                            "variants": [variant]}}}  # fmt: skip
        (folder / "routes.json").write_text(json.dumps(routes))
        port = free_port()
        address = ("127.0.0.1", port)
        command = ["--data-dir", str(folder), "gateway", "--port", str(port)]
        with server_process(command, address, "/-/healthz") as pid:
            yield Target(address, pid, replica.normal, replica.slow_path, "/-/healthz")


def test_slow_heads_and_bodies_neither_fail_nor_slow_normal_requests(tmp_path: Path) -> None:
    with gateway(tmp_path) as target:
        report = attack(target, connections=200, seconds=22)
    check(report, ConnectionSettings())


@pytest.mark.soak
def test_soak_500_slow_heads_and_500_slow_bodies_for_two_minutes(tmp_path: Path) -> None:
    with gateway(tmp_path) as target:
        report = attack(target, connections=500, seconds=120)
    check(report, ConnectionSettings())
