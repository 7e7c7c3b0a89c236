"""Version numbers under concurrent registration: 1..N, no gaps, nothing lost."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ferryman.artifacts import LocalArtifactStore
from ferryman.registry import Database, Registry
from ferryman.registry.database import head_revision
from tests.registry.worker import model_bytes

WORKER = Path(__file__).with_name("worker.py")


def test_fifty_threads_register_one_model(registry: Registry) -> None:
    with ThreadPoolExecutor(max_workers=50) as pool:
        records = list(
            pool.map(lambda i: registry.register("digits", model_bytes(i), f"t{i}"), range(50))
        )

    assert sorted(r.version for r in records) == list(range(1, 51))
    listed = registry.list_versions("digits")
    assert [v.version for v in listed] == list(range(1, 51))
    assert {v.digest for v in listed} == {r.digest for r in records}
    registered = [
        e for e in registry.list_events("digits", limit=200) if e.action == "version.registered"
    ]
    assert len(registered) == 50


@pytest.mark.e2e
def test_ten_processes_on_a_fresh_database_register_fifty_versions(
    database_url: str, tmp_path: Path
) -> None:
    """Each process also migrates the empty database at start: they must not collide."""
    store_dir = tmp_path / "artifacts"
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), database_url, str(store_dir), "digits", "5"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    acks = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        acks += [line.split() for line in out.splitlines() if line.startswith("ACK")]

    assert sorted(int(version) for _, version, _ in acks) == list(range(1, 51))
    database = Database(database_url)
    registry = Registry(database, LocalArtifactStore(store_dir))
    listed = {v.version: v.digest for v in registry.list_versions("digits")}
    assert listed == {int(version): digest for _, version, digest in acks}
    assert database.current_revision() == head_revision()
    database.dispose()
