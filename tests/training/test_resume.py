"""Kill-and-resume: a run stopped by SIGTERM or SIGKILL mid-epoch resumes from its last
checkpoint and ends with the same weights as an uninterrupted run with the same seed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ferryman.registry import Registry, RunStatus
from ferryman.training import RunEnvironment, TrainingRequest, start_run
from ferryman.training.checkpoint import decode_checkpoint
from ferryman.training.image import train_image_classifier
from tests.training.conftest import open_registry
from tests.training.resume_child import PARAMS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _child(root: Path, *run_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.resume_child", str(root), *run_id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def _stop_at(child: subprocess.Popen[str], epoch: int, batch: int, sig: signal.Signals) -> None:
    """Read the child's progress until it reports ``batch`` of ``epoch``, then signal it."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.split() == ["batch", str(epoch), str(batch)]:
            child.send_signal(sig)
            break
    child.communicate(timeout=60)
    assert child.returncode != 0


def _resume(root: Path, run_id: str) -> None:
    child = _child(root, run_id)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0, out
    assert f"done {run_id}" in out


def _final_weights(registry: Registry, run_id: str) -> dict[str, np.ndarray]:
    last = registry.runs.get(run_id).checkpoints[-1]
    arrays = decode_checkpoint(registry.store.read(last.digest)).arrays
    return {name: array for name, array in arrays.items() if name.startswith("model/")}


def test_sigterm_then_sigkill_mid_epoch_resumes_to_the_same_weights(tmp_path: Path) -> None:
    reference = open_registry(tmp_path / "reference")
    request = TrainingRequest("digits", "digits", PARAMS)
    expected = start_run(train_image_classifier, request, RunEnvironment(reference, "ci")).run

    root = tmp_path / "killed"
    registry = open_registry(root)
    _stop_at(_child(root), epoch=1, batch=1, sig=signal.SIGTERM)
    (run,) = registry.runs.list()
    assert run.status is RunStatus.INTERRUPTED
    assert [c.step for c in registry.runs.get(run.id).checkpoints] == [0]

    resumed = _child(root, run.id)
    _stop_at(resumed, epoch=2, batch=1, sig=signal.SIGKILL)
    killed = registry.runs.get(run.id)
    assert killed.status is RunStatus.RUNNING  # SIGKILL leaves no chance to record anything
    assert [c.step for c in killed.checkpoints] == [0, 1]

    _resume(root, run.id)
    finished = registry.runs.get(run.id)
    assert finished.status is RunStatus.SUCCEEDED
    assert [p.step for p in finished.metrics["val_accuracy"]] == [0, 1, 2, 3]
    got, want = _final_weights(registry, run.id), _final_weights(reference, expected.id)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)
    assert registry.get_version("digits", 1).parent_run == run.id
