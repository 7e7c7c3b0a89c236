"""The SDK's local client, as users call it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman import Client
from ferryman.errors import InvalidInput


def test_client_round_trip(tmp_path: Path, onnx_bytes: Callable[..., bytes]) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_bytes())
    with Client.local(data_dir=tmp_path / "data") as client:
        first = client.register(model, "digits", metrics={"accuracy": 0.9}, aliases=["candidate"])
        client.register(model, "digits")
        client.set_alias("digits", "production", 2)

        assert first.version == 1
        assert client.get_version("digits").version == 2
        assert client.get_version("digits", "candidate").metrics == {"accuracy": 0.9}
        assert [m.name for m in client.list_models()] == ["digits"]
        assert [v.version for v in client.list_versions("digits")] == [1, 2]
        assert client.list_variants("digits", 1) == []
        assert client.list_events("digits")[-1].action == "alias.set"
        client.remove_alias("digits", "candidate")
        client.archive_version("digits", 1)
        assert [v.version for v in client.list_versions("digits")] == [2]


def test_client_refuses_directories_and_bad_types(tmp_path: Path) -> None:
    with Client.local(data_dir=tmp_path / "data") as client:
        with pytest.raises(InvalidInput, match="not a regular file"):
            client.register(tmp_path, "digits")
        with pytest.raises(InvalidInput, match=r"metrics\.accuracy"):
            client.register(tmp_path, "digits", metrics={"accuracy": "great"})  # type: ignore[dict-item]
