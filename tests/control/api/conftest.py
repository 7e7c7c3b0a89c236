"""A real control-plane server on 127.0.0.1 (uvicorn in a thread, on a free port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from ferryman.config import ControlSettings, Settings, load_settings
from ferryman.control.api.app import create_app
from ferryman.control.api.security import load_or_create_token
from ferryman.control.monitor.history import HistoryView
from ferryman.registry import Registry


@dataclass(frozen=True)
class RunningServer:
    url: str
    token: str
    registry: Registry
    settings: Settings


def start_server(
    settings: Settings, history: HistoryView | None = None
) -> tuple[uvicorn.Server, threading.Thread, RunningServer]:
    registry = Registry.open(settings)
    token = load_or_create_token(settings.data_dir).value
    app = create_app(settings, registry, token, history=history)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:  # pragma: no cover
            raise RuntimeError("control plane did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, RunningServer(f"http://127.0.0.1:{port}", token, registry, settings)


@contextmanager
def serving(settings: Settings) -> Iterator[RunningServer]:
    """A control plane on ``settings`` for the block; stopped and its registry closed after."""
    server, thread, running = start_server(settings)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        running.registry.close()


@pytest.fixture
def control(tmp_path: Path) -> Iterator[RunningServer]:
    settings = load_settings(
        data_dir=tmp_path / "data", control=ControlSettings(max_upload_bytes=64 * 1024)
    )
    with serving(settings) as running:
        yield running


@pytest.fixture
def api(control: RunningServer) -> Iterator[httpx.Client]:
    """An admin client of the ``control`` fixture (a module's own ``control`` if it has one)."""
    headers = {"authorization": f"Bearer {control.token}"}
    with httpx.Client(base_url=control.url, headers=headers, timeout=10) as client:
        yield client
