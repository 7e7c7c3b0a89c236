"""`ferryman demo --fast` end to end, as the README runs it: a real process on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
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


@pytest.mark.e2e
def test_a_rerun_names_its_versions_keeps_traffic_flowing_and_stops_with_down(
    tmp_path: Path,
) -> None:
    """In a data dir that already holds digits v1-v3, the demo trains v4, v5 and v6 and says
    so; serving on, it keeps labelled traffic flowing until `ferryman down` stops it all."""
    from tests.conftest import make_onnx  # noqa: PLC0415

    data_dir = tmp_path / "data"
    registry = Registry.open(load_settings(data_dir=data_dir))
    for seed in range(3):
        registry.register("digits", make_onnx(seed_value=float(seed)), "earlier-run")
    registry.close()
    gateway_port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")},
        "FERRYMAN_GATEWAY__PORT": str(gateway_port),
        "FERRYMAN_CONTROL__PORT": str(_free_port()),
        "FERRYMAN_STATE_DIR": str(tmp_path / "state"),
        "COLUMNS": "160",
    }
    ferryman = str(Path(sys.executable).with_name("ferryman"))
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [ferryman, "--data-dir", str(data_dir), "demo", "--fast", "--keep-serving"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 540
        while "Traffic:" not in log.read_text() and demo.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        assert demo.poll() is None, log.read_text()[-3000:]
        before = _gateway_requests(gateway_port)
        time.sleep(4)
        flowing = _gateway_requests(gateway_port) - before
        started = time.monotonic()
        down = subprocess.run(
            [ferryman, "--data-dir", str(data_dir), "down"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        took_s = time.monotonic() - started
        assert demo.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
            subprocess.run([ferryman, "--data-dir", str(data_dir), "down"], env=env,
                           check=False, capture_output=True, timeout=120)  # fmt: skip
    said = log.read_text()
    assert [f"Train v{n}" in said for n in (4, 5, 6)] == [True, True, True], said[-3000:]
    assert "Train v1" not in said
    assert "offline it looks as good as v4" in said
    assert "failed requests: 0" in said
    assert 5 <= flowing <= 40, flowing  # about 5 requests/s (20 in 4 s), bounded
    assert down.returncode == 0, down.stderr
    assert "and the control plane on" in down.stdout
    assert took_s < 30, took_s
    assert list((data_dir / "replicas").glob("*.json")) == []
    assert not (data_dir / "gateway.json").exists()


def _gateway_requests(port: int) -> float:
    """Answers the gateway has counted so far, over every endpoint and status."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ferryman_gateway_requests_total{")
    )
