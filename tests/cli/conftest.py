"""The CLI run in-process, as a user types it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.cli.main import main


@pytest.fixture
def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """Run ``ferryman ARGS`` in-process; returns (exit code, stdout, stderr).

    In a directory whose ``./ferryman-data`` exists (the data dir of a user who has used
    Ferryman there), with notes of running control planes kept apart from the machine's.
    """
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ferryman-data").mkdir(exist_ok=True)
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
