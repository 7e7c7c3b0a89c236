"""End to end: ``ferryman serve model.onnx`` as a real process on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import affine_model
from tests.support import free_port

pytestmark = pytest.mark.e2e


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Poll readiness: another process's start is not an event this one can await."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"replica exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("replica not ready in time")


def test_serve_a_file_answer_and_drain_on_sigterm(tmp_path: Path) -> None:
    model = tmp_path / "affine.onnx"
    model.write_bytes(affine_model())
    port = free_port()
    command = [sys.executable, "-c", "from ferryman.cli.main import main; main()"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path), "serve", str(model), "--port", str(port)],
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                            "data": [1, 2, 3, 4]}]}  # fmt: skip
        response = httpx.post(f"{base}/v2/models/affine/infer", json=body)
        assert response.json()["outputs"][0]["data"] == [3, 5, 7, 9]
        assert response.headers["ferryman-model-version"] == "1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert f"serving affine v1 (onnx) on http://127.0.0.1:{port}" in stderr
