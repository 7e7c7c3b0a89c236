"""Fixtures for the end-to-end tests of the local control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.control.e2e.harness import Stack


@pytest.fixture
def stack(tmp_path: Path, onnx_bytes: Callable[..., bytes]) -> Iterator[Stack]:
    """A running control plane with model ``m`` v1 registered (nothing deployed yet)."""
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_bytes())
    running = Stack(tmp_path / "data")
    running.ferryman("register", str(model), "--model", "m")
    running.up()
    yield running
    running.down()
