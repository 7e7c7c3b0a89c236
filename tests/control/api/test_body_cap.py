"""The control plane's body cap: a JSON body is held and parsed whole, so its size is bounded
(a multi-GB feedback batch took the control plane's memory); the model upload keeps its own."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import ControlSettings, load_settings
from tests.conftest import make_onnx
from tests.control.api.conftest import RunningServer, serving

LIMIT = 4096


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[RunningServer]:
    control = ControlSettings(max_upload_bytes=64 * 1024, max_body_bytes=LIMIT)
    with serving(load_settings(data_dir=tmp_path, control=control)) as running:
        yield running


def _feedback(count: int, first: str = "") -> bytes:
    ids = [first or os.urandom(16).hex()] + [os.urandom(16).hex() for _ in range(count - 1)]
    return json.dumps([{"request_id": id_, "label": "7"} for id_ in ids]).encode()


def test_a_body_over_the_cap_is_413_before_any_route_reads_it(capped: RunningServer) -> None:
    headers = {"authorization": f"Bearer {capped.token}", "content-type": "application/json"}
    feedback = capped.url + "/api/v1/feedback"
    small = httpx.post(feedback, content=_feedback(10), headers=headers)
    assert small.status_code == 200
    assert small.json()["unknown"] == 10
    big = httpx.post(feedback, content=_feedback(200, first="a" * 32), headers=headers)
    assert big.status_code == 413
    assert "control.max_body_bytes" in big.json()["error"]
    chunked = httpx.post(feedback, content=iter([_feedback(100, first="b" * 32)] * 2),
                         headers=headers)  # fmt: skip
    assert chunked.status_code == 413
    assert "passed 4096 bytes" in chunked.json()["error"]
    again = httpx.post(feedback, content=_feedback(2, first="a" * 32), headers=headers)
    assert again.json()["items"][0]["status"] == "unknown_request"  # nothing of it was kept
    again = httpx.post(feedback, content=_feedback(2, first="b" * 32), headers=headers)
    assert again.json()["items"][0]["status"] == "unknown_request"


def test_the_cap_leaves_the_model_upload_to_its_own_limit(capped: RunningServer) -> None:
    model = make_onnx(width=2000)  # 8 kB of weights: over the body cap, under the upload's
    assert LIMIT < len(model) < capped.settings.control.max_upload_bytes
    answer = httpx.post(capped.url + "/api/v1/models/wide/versions", content=model,
                        headers={"authorization": f"Bearer {capped.token}"})  # fmt: skip
    assert answer.status_code == 201, answer.text


def test_an_unauthenticated_body_is_refused_unread(capped: RunningServer) -> None:
    """The auth check still comes first: 401, whatever the body declares."""
    host, port = capped.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"POST /api/v1/feedback HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    b"content-length: 99999999999\r\n\r\n")  # fmt: skip
        assert raw.recv(4096).startswith(b"HTTP/1.1 401")
