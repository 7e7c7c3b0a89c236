"""Which data dir a command uses when the line names none, and one control plane per data
dir (the lock ``ferryman up`` and the demo hold), in-process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.control.data_dir_lock import DataDirLock, running_control_planes, running_on
from ferryman.errors import Conflict

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def fresh(run: Run, tmp_path: Path) -> Run:
    """A directory where Ferryman has never run (no ./ferryman-data)."""
    shutil.rmtree(tmp_path / "ferryman-data")
    return run


def test_a_new_empty_data_dir_is_announced_in_one_line_first(fresh: Run, tmp_path: Path) -> None:
    code, _, err = fresh("models", "list")
    assert code == 0
    assert err.splitlines() == [
        "warning: no data dir given (--data-dir or FERRYMAN_DATA_DIR) and no control plane "
        "running; using a new, empty ./ferryman-data"
    ]
    assert (tmp_path / "ferryman-data" / "registry.db").exists()
    assert fresh("models", "list")[2] == ""  # it exists now: no warning


def test_a_given_data_dir_is_used_without_a_word(fresh: Run, tmp_path: Path) -> None:
    code, _, err = fresh("--data-dir", str(tmp_path / "mine"), "models", "list")
    assert (code, err) == (0, "")
    assert not (tmp_path / "ferryman-data").exists()


def test_the_running_control_planes_data_dir_is_found(fresh: Run, tmp_path: Path) -> None:
    elsewhere = tmp_path / "demo-data"
    lock = DataDirLock(elsewhere, tmp_path / "state", "http://127.0.0.1:7171")
    try:
        code, _, err = fresh("models", "list")
    finally:
        lock.release()
    assert code == 0
    assert (
        err.strip()
        == f"using the data dir of the control plane on http://127.0.0.1:7171: {elsewhere}"
    )
    assert (elsewhere / "registry.db").exists()
    assert not (tmp_path / "ferryman-data").exists()
    assert running_control_planes(tmp_path / "state") == []  # released: the note is gone


def test_two_running_control_planes_are_not_guessed_between(fresh: Run, tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "a", tmp_path / "state", "http://127.0.0.1:7171")
    second = DataDirLock(tmp_path / "b", tmp_path / "state", "http://127.0.0.1:7272")
    # One note per pid: this process's now names b; a's, as another process would keep it.
    (tmp_path / "state" / "control-planes" / "other.json").write_text(
        json.dumps({"data_dir": str(tmp_path / "a")})
    )
    try:
        code, out, err = fresh("models", "list")
    finally:
        first.release()
        second.release()
    assert (code, out) == (1, "")
    assert err.startswith("error: 2 control planes run: ")
    assert str(tmp_path / "a") in err
    assert str(tmp_path / "b") in err
    assert err.rstrip().endswith("name one with --data-dir")


def test_one_control_plane_per_data_dir(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path / "data", tmp_path / "state", "http://127.0.0.1:7171")
    with pytest.raises(Conflict, match=r"already runs on data dir .* \(pid \d+, http://127"):
        DataDirLock(tmp_path / "data", tmp_path / "state", "http://127.0.0.1:7272")
    running = running_on(tmp_path / "data")
    assert running is not None
    assert running.url == "http://127.0.0.1:7171"
    lock.release()
    assert running_on(tmp_path / "data") is None
    DataDirLock(tmp_path / "data", tmp_path / "state", "http://127.0.0.1:7272").release()


def test_a_stale_note_is_dropped(tmp_path: Path) -> None:
    notes = tmp_path / "state" / "control-planes"
    notes.mkdir(parents=True)
    (notes / "4242.json").write_text(json.dumps({"data_dir": str(tmp_path / "gone")}))
    assert running_control_planes(tmp_path / "state") == []
    assert list(notes.iterdir()) == []
