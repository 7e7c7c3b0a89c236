"""The SDK's HTTP backend against the real server: same operations, same errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ferryman import Client
from ferryman.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsafeArtifact,
)
from tests.control.api.conftest import RunningServer


@pytest.fixture
def client(control: RunningServer) -> Client:
    return Client.remote(control.url, control.token, actor="alice")


def test_register_and_read_over_http(
    client: Client, control: RunningServer, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_bytes())
    first = client.register(model, "digits", metrics={"accuracy": 0.9}, aliases=["candidate"])
    client.register(model, "digits", tags={"team": "vision"})
    moved = client.set_alias("digits", "production", 2)

    assert first.version == 1
    assert first.aliases == ("candidate",)
    assert moved.version == 2
    assert client.get_version("digits", "production").tags == {"team": "vision"}
    assert [v.version for v in client.list_versions("digits")] == [1, 2]
    assert client.list_models()[0].aliases == {"candidate": 1, "production": 2}
    assert client.list_variants("digits", 1) == []
    events = client.list_events("digits")
    assert events[-1].action == "alias.set"
    assert events[-1].actor == "api:alice"
    client.remove_alias("digits", "candidate")
    assert client.archive_version("digits", 1).archived_at is not None
    # The HTTP and the local view agree: one registry.
    assert control.registry.get_version("digits", 2) == client.get_version("digits", 2)


def test_errors_come_back_as_the_same_errors(
    client: Client, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(UnsafeArtifact, match="pickle"):
        client.register(pickled, "digits")
    with pytest.raises(NotFound, match="'digits' does not exist"):
        client.get_version("digits", 1)
    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_bytes())
    client.register(model, "digits", aliases=["production"])
    with pytest.raises(Conflict, match="aliased"):
        client.archive_version("digits", 1)
    with pytest.raises(InvalidInput, match="not allowed"):
        client.get_version("../etc", 1)
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\x08" * (128 * 1024))
    with pytest.raises(PayloadTooLarge, match="limit"):
        client.register(big, "digits")


def test_a_wrong_token_is_unauthenticated(control: RunningServer) -> None:
    with pytest.raises(Unauthenticated):
        Client.remote(control.url, "wrong").list_models()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/models/..%2f..%2fetc/versions", 404),
        ("/api/v1/models/%2e%2e/versions", 400),
        ("/api/v1/models/x%00/versions", 400),
        ("/api/v1/models/%ef%bc%8e%ef%bc%8e/versions", 400),
        ("/api/v1/events?limit=0", 400),
        ("/api/v1/events?limit=abc", 400),
        ("/api/v1/runs/not-a-run-id", 400),
        ("/api/v1/nothing-here", 404),
    ],
)
def test_bad_requests_get_4xx_with_an_error_body(
    control: RunningServer, path: str, status: int
) -> None:
    response = httpx.get(control.url + path, headers={"authorization": f"Bearer {control.token}"})
    assert response.status_code == status
    assert isinstance(response.json()["error"], str)


def test_bad_metadata_header_is_a_400(
    control: RunningServer, onnx_bytes: Callable[..., bytes]
) -> None:
    response = httpx.post(
        control.url + "/api/v1/models/digits/versions",
        content=onnx_bytes(),
        headers={"authorization": f"Bearer {control.token}", "ferryman-metadata": "{not json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
