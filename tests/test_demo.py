"""`ferryman demo --fast` end to end, as the README runs it: a real process on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferryman.config import load_settings
from ferryman.registry import Registry, RolloutStatus
from tests.support import free_port as _free_port


@pytest.mark.e2e
def test_the_demo_rolls_back_the_bad_version_and_promotes_the_good_one_with_no_failure(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")},
        "FERRYMAN_GATEWAY__PORT": str(_free_port()),
        "FERRYMAN_CONTROL__PORT": str(_free_port()),
        "COLUMNS": "160",
    }
    ferryman = str(Path(sys.executable).with_name("ferryman"))
    try:
        done = subprocess.run(
            [ferryman, "--data-dir", str(data_dir), "demo", "--fast"],
            capture_output=True, text=True, env=env, timeout=540, check=False,
        )  # fmt: skip
        left_running = list((data_dir / "replicas").glob("*.json"))
    finally:  # whatever happened, leave no replica or gateway behind
        subprocess.run([ferryman, "--data-dir", str(data_dir), "down"], env=env, check=False,
                       capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "failed requests: 0" in done.stdout
    assert "promoted" in done.stdout
    assert "rolled_back" in done.stdout

    registry = Registry.open(load_settings(data_dir=data_dir))
    assert [v.version for v in registry.list_versions("digits")] == [1, 2, 3]
    assert registry.get_version("digits", "production").version == 3
    first, second = registry.rollouts.list("digits")
    assert (first.candidate.version, first.status) == (2, RolloutStatus.ROLLED_BACK)
    assert "accuracy" in first.reason  # the mislabelled v2 answered every request, wrongly
    assert (second.candidate.version, second.status) == (3, RolloutStatus.PROMOTED)
    assert left_running == []  # --fast leaves nothing running
    registry.close()
