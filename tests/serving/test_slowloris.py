"""RELIABILITY B8 on a replica process: slowhttptest's slow heads and bodies, a normal client."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.config import ConnectionSettings
from tests.serving.conftest import replica_process as replica
from tests.slowloris import attack, check, needs_slowhttptest

pytestmark = [pytest.mark.e2e, needs_slowhttptest]


def test_slow_heads_and_bodies_neither_fail_nor_slow_normal_requests(tmp_path: Path) -> None:
    with replica(tmp_path) as target:
        report = attack(target, connections=200, seconds=22)
    check(report, ConnectionSettings())


def test_a_low_fd_limit_caps_connections_instead_of_failing_them(tmp_path: Path) -> None:
    """Under ``ulimit -n 400`` the replica holds at most 272 connections (128 fds kept back):
    600 slow ones make room for normal ones, where before every normal request failed."""
    with replica(tmp_path, nofile=400) as target:
        report = attack(target, connections=300, seconds=12, is_holding=False)
    check(report, ConnectionSettings())
    assert report.fds_most < 400, report.describe()


@pytest.mark.soak
def test_soak_500_slow_heads_and_500_slow_bodies_for_two_minutes(tmp_path: Path) -> None:
    with replica(tmp_path) as target:
        report = attack(target, connections=500, seconds=120)
    check(report, ConnectionSettings())
