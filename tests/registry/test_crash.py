"""RELIABILITY F6: a registering process SIGKILLed at random points loses nothing it acked.

Each round starts a worker that registers versions as fast as it can, kills it with
SIGKILL after a random delay, and checks: the database is intact, every acknowledged
registration is present with its digest, every version's artifact is in the store and
verifies, and nothing under the store's final names is a half-written file.
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from ferryman.artifacts import LocalArtifactStore
from ferryman.errors import ModelNotFound
from ferryman.registry import Database, Registry

WORKER = Path(__file__).with_name("worker.py")
ROUNDS = 20


@pytest.mark.e2e
def test_sigkill_during_registration_loses_no_acknowledged_write(
    database_url: str, tmp_path: Path
) -> None:
    store_dir = tmp_path / "artifacts"
    database = Database(database_url)
    database.migrate()
    rng = random.Random(6)
    acked: dict[int, str] = {}
    for _ in range(ROUNDS):
        acked |= _register_until_killed(database_url, store_dir, rng.uniform(0.02, 0.4))
        _check_consistent(database, LocalArtifactStore(store_dir), acked)
    assert len(acked) >= ROUNDS  # the kills landed while work was happening
    database.dispose()


def _register_until_killed(url: str, store_dir: Path, delay_s: float) -> dict[int, str]:
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(store_dir), "digits", "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "READY"
    time.sleep(delay_s)
    worker.send_signal(signal.SIGKILL)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    acks = [line.split() for line in out.splitlines() if line.startswith("ACK ")]
    return {int(version): digest for _, version, digest in acks if len(digest) == 64}


def _check_consistent(database: Database, store: LocalArtifactStore, acked: dict[int, str]) -> None:
    if database.dialect == "sqlite":
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    registry = Registry(database, store)
    try:
        versions = registry.list_versions("digits")
    except ModelNotFound:  # killed before its first registration committed (a slow start)
        versions = []
    listed = {v.version: v.digest for v in versions}
    assert listed.items() >= acked.items(), "an acknowledged registration is missing"
    assert sorted(listed) == list(range(1, len(listed) + 1)), "version numbers have gaps"
    for digest in listed.values():
        store.read(digest)  # raises if missing or corrupt
    for stored in (store.root / "objects").rglob("*"):
        if stored.is_file():
            assert hashlib.sha256(stored.read_bytes()).hexdigest() == stored.name
