"""The training commands as users run them: train, --resume, tune, runs, register --trust."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ferryman.cli.main import main
from tests.training.test_tabular import write_csv

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``ferryman --data-dir TMP ARGS`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["--data-dir", str(tmp_path / "data"), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_train_digits_shows_progress_and_registers(run: Run) -> None:
    code, out, err = run("train", "digits", "--param", "epochs=2")
    assert code == 0, err
    assert "epoch" in err  # the Rich progress bar, on stderr
    assert "Registered digits v1" in out
    assert "onnx-int8" in out
    code, out, _ = run("runs", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["status"] == "succeeded"
    code, out, _ = run("runs", "show", listed["id"], "--json")
    log_path = Path(json.loads(out)["log_path"])
    assert "checkpoint at step 1" in log_path.read_text()
    code, out, _ = run("runs", "show", listed["id"])
    assert code == 0
    assert "val_accuracy" in out
    assert "checkpoints: 2" in out
    code, out, _ = run("versions", "show", "digits", "1")
    assert code == 0
    assert f"run {listed['id']} → v1" in out  # lineage: run → version → variants
    assert "b32 ms" in out
    assert "within 1 pp of baseline" in out


def test_train_tabular_with_target_then_show_json(run: Run, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "fraud.csv")
    code, out, err = run(
        "train", "tabular-classifier", "--model", "fraud", "--data", str(data),
        "--target", "label", "-p", "model=gbm", "-p", "n_estimators=20", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result == {"run": result["run"], "status": "succeeded", "version": 1}
    code, out, _ = run("runs", "show", result["run"], "--json")
    assert json.loads(out)["params"]["n_estimators"] == 20


def test_user_code_and_resume_through_the_cli(run: Run) -> None:
    code, _, err = run(
        "train", "tests.training.user_model:fit", "--model", "blobs", "-p", "crash_after=1"
    )
    assert code == 130
    assert "--resume" in err
    _, out, _ = run("runs", "list", "--json")
    run_id = json.loads(out)[0]["id"]
    code, out, err = run("train", "--resume", run_id, "--json")
    assert code == 0, err
    assert json.loads(out) == {"run": run_id, "status": "succeeded", "version": 1}


def test_one_line_errors_for_bad_use(run: Run) -> None:
    code, _, err = run("train", "image-classifier")
    assert code == 1
    assert "--model NAME" in err
    code, _, err = run("train", "digits", "-p", "epochs")
    assert code == 1
    assert "KEY=VALUE" in err


def test_tune_registers_the_best_trial(run: Run) -> None:
    code, out, err = run(
        "tune", "digits", "--model", "digits", "--trials", "2", "-p", "epochs=2", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["completed"] + result["pruned"] == 2
    assert result["version"] == 1


def test_register_a_pickle_only_with_trust(run: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 3)).astype(np.float32)
    model = LogisticRegression().fit(features, features[:, 0] > 0)
    canary = tmp_path / "model.pkl"
    canary.write_bytes(pickle.dumps(model))
    code, _, err = run("register", str(canary), "--model", "sk")
    assert code == 1
    assert "pickle" in err
    code, out, err = run("register", str(canary), "--model", "sk", "--trust", "--json")
    assert code == 0, err
    _, out, _ = run("versions", "show", "sk", "1", "--json")
    shown = json.loads(out)
    assert shown["tags"] == {"converted_from": "pickle", "trust": "explicit"}
    assert shown["format"] == "onnx"
    stored = list((tmp_path / "data" / "artifacts").rglob("*"))
    assert all(not f.is_file() or f.read_bytes() != canary.read_bytes() for f in stored)
    _, out, _ = run("events", "--model", "sk", "--json")
    trusted = [e for e in json.loads(out) if e["action"] == "version.trusted_pickle"]
    assert trusted[0]["object_key"] == "sk/1"
    assert trusted[0]["details"]["source"] == "model.pkl"
    assert len(trusted[0]["details"]["source_sha256"]) == 64
