"""A registry with the tiny affine model (and its golden requests), and the CLI run in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ferryman.cli.main import main
from ferryman.config import Settings
from ferryman.reference import ReferenceData
from ferryman.registry import Registry
from tests.serving.conftest import affine_model, golden

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ferryman-data"
    folder.mkdir()
    return folder


@pytest.fixture
def registry(data_dir: Path) -> Iterator[Registry]:
    opened = Registry.open(Settings(data_dir=data_dir))
    yield opened
    opened.close()


@pytest.fixture
def affine(registry: Registry) -> str:
    """``affine`` v1: y = 2x + 1 on 4 features, with two golden requests."""
    reference = ReferenceData(golden=(golden([0.0, 1.0, 2.0, 3.0]), golden([1.0, 1.0, 1.0, 1.0])))
    registry.register("affine", affine_model(), "tester", reference=reference)
    return "affine"


@pytest.fixture
def run(data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``ferryman --data-dir D ARGS`` in-process; (exit code, stdout, stderr)."""
    monkeypatch.chdir(data_dir.parent)
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(data_dir.parent / "state"))
    monkeypatch.setenv("COLUMNS", "220")

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["--data-dir", str(data_dir), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
