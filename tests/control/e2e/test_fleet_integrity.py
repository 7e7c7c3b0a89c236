"""Issue 13 end to end: faults of the control plane's own making leave the fleet serving.

Real processes on 127.0.0.1: ``ferryman up``, the gateway and the replicas; real HTTP
load, bounded in rate and time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.control.e2e.harness import Load, Stack, wait_for

pytestmark = pytest.mark.e2e


def infer_url(stack: Stack) -> str:
    return f"{stack.gateway}/v2/models/m/infer"


def refused_up(stack: Stack, **env: str) -> str:
    """Run ``ferryman up`` expecting a refusal; its stderr."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ferryman")), "up"],
        env={**stack.env, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_a_control_plane_on_a_wrong_or_new_registry_leaves_the_fleet_alone(
    stack: Stack, tmp_path: Path
) -> None:
    """A mistyped database URL, then a deleted registry.db: refused in one line, 0 failed."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    with stack.reading() as registry:
        owner = registry.identity()
    wait_for(lambda: (stack.routes() or None) and stack.routes().registry == owner, 10, "stamp")  # type: ignore[union-attr]
    before, table = stack.replica_pids(), stack.routes()
    moved = tmp_path / "moved"
    moved.mkdir()
    with Load(infer_url(stack), rate=40, max_s=60).running() as load:
        time.sleep(1)
        stack.kill_control_plane()
        typo = refused_up(stack, FERRYMAN_DATABASE_URL=f"sqlite:///{tmp_path / 'typo.db'}")
        assert f"belongs to registry {owner}; this one is " in typo
        assert "(new)" in typo
        assert "--adopt" in typo
        for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
            if (stack.data_dir / name).exists():
                os.replace(stack.data_dir / name, moved / name)
        deleted = refused_up(stack)
        assert f"belongs to registry {owner}" in deleted
        (stack.data_dir / "registry.db").unlink()  # the empty one the refused start made
        for path in moved.iterdir():
            os.replace(path, stack.data_dir / path.name)
        stack.up()  # the right registry: re-adopts the fleet
        time.sleep(2)
    assert len(load.outcomes) > 100
    assert load.failures() == []
    assert stack.replica_pids() == before
    after = stack.routes()
    assert after is not None
    assert table is not None
    assert after.endpoints["m"].variants == table.endpoints["m"].variants
