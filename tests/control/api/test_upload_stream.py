"""Model uploads stream to a temporary file in the artifact store as they arrive: never held
whole in memory, refused with 413 as soon as they pass the cap, and nothing is left behind
by an upload that fails (RELIABILITY B3, F7)."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from ferryman.config import ControlSettings, load_settings
from tests.conftest import make_onnx
from tests.control.api.conftest import RunningServer, serving

CAP_BYTES = 8 << 20


def _serve(data_dir: Path) -> AbstractContextManager[RunningServer]:
    control = ControlSettings(max_upload_bytes=CAP_BYTES)
    return serving(load_settings(data_dir=data_dir, control=control))


@pytest.fixture
def control(tmp_path: Path) -> Iterator[RunningServer]:
    with _serve(tmp_path / "data") as running:
        yield running


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _tmp_dir(running: RunningServer) -> Path:
    return running.settings.artifacts_dir / "tmp"


def _objects(running: RunningServer) -> list[Path]:
    return [p for p in (running.settings.artifacts_dir / "objects").rglob("*") if p.is_file()]


def _connect(running: RunningServer, head: bytes) -> socket.socket:
    host, port = running.url.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(port)), timeout=30)
    raw.sendall(head + f"authorization: Bearer {running.token}\r\n\r\n".encode())
    return raw


def _answer(raw: socket.socket) -> bytes:
    """One whole HTTP answer: its head and the body its content-length declares."""
    received = b""
    while b"\r\n\r\n" not in received and (chunk := raw.recv(65536)):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length and (chunk := raw.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def _wait_for_part(directory: Path, at_least_bytes: int) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for part in directory.glob("*.part"):
            if part.stat().st_size >= at_least_bytes:
                return part
        time.sleep(0.02)
    raise AssertionError(f"no temporary of {at_least_bytes} bytes in the store's tmp folder")


def test_an_upload_is_written_to_the_store_as_it_arrives(control: RunningServer) -> None:
    model = make_onnx(width=750_000)  # 3 MB
    half = len(model) // 2
    head = (f"POST /api/v1/models/big/versions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-length: {len(model)}\r\n").encode()  # fmt: skip
    with _connect(control, head) as raw:
        raw.sendall(model[:half])
        part = _wait_for_part(_tmp_dir(control), 1 << 20)  # on disk before the body is done
        raw.sendall(model[half:])
        answer = _answer(raw)

    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert not part.exists()
    assert list(_tmp_dir(control).iterdir()) == []
    version = control.registry.get_version("big", 1)
    assert version.digest == hashlib.sha256(model).hexdigest()
    assert control.registry.store.read(version.digest) == model


def test_a_client_that_goes_away_mid_upload_leaves_nothing(control: RunningServer) -> None:
    model = make_onnx(width=750_000)
    head = (f"POST /api/v1/models/big/versions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-length: {len(model)}\r\n").encode()  # fmt: skip
    with _connect(control, head) as raw:
        raw.sendall(model[: len(model) // 2])
        _wait_for_part(_tmp_dir(control), 1 << 20)
    deadline = time.monotonic() + 30
    while list(_tmp_dir(control).iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(_tmp_dir(control).iterdir()) == []
    assert control.registry.list_models() == []


def test_an_upload_past_the_cap_is_refused_as_it_passes_it(control: RunningServer) -> None:
    """Chunked, so no length is declared: the 413 comes while the client is still sending,
    and neither the temporary nor a row nor an object is left."""
    head = b"POST /api/v1/models/big/versions HTTP/1.1\r\nhost: 127.0.0.1\r\n" \
           b"transfer-encoding: chunked\r\n"  # fmt: skip
    chunk = b"\x08" * (1 << 20)
    with _connect(control, head) as raw:
        for _ in range(CAP_BYTES // len(chunk) + 1):
            raw.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = _answer(raw)  # the body never ends: the answer comes at the cap

    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"control.max_upload_bytes" in answer
    assert list(_tmp_dir(control).iterdir()) == []
    assert control.registry.list_models() == []
    assert _objects(control) == []


def test_a_refused_file_leaves_nothing(control: RunningServer) -> None:
    answer = httpx.post(control.url + "/api/v1/models/bad/versions",
                        content=b"\x80\x04" + b"\x00" * (2 << 20),
                        headers={"authorization": f"Bearer {control.token}"})  # fmt: skip
    assert answer.status_code == 415, answer.text
    assert "pickle" in answer.json()["error"]
    assert list(_tmp_dir(control).iterdir()) == []
    assert control.registry.list_models() == []
    assert _objects(control) == []


def test_a_full_disk_is_507_and_leaves_nothing(tiny_disk: Path) -> None:
    """RELIABILITY F7 over HTTP: the store fills while the upload streams."""
    with _serve(tiny_disk / "data") as running:
        headers = {"authorization": f"Bearer {running.token}"}
        big = make_onnx(width=1_500_000)  # 6 MB, on a 4 MiB disk
        answer = httpx.post(running.url + "/api/v1/models/big/versions", content=big,
                            headers=headers)  # fmt: skip
        assert answer.status_code == 507, answer.text
        assert "out of space" in answer.json()["error"]
        assert list(_tmp_dir(running).iterdir()) == []
        assert running.registry.list_models() == []
        small = httpx.post(running.url + "/api/v1/models/small/versions", content=make_onnx(),
                           headers=headers)  # fmt: skip
        assert small.status_code == 201, small.text
