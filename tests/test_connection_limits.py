"""The connection guard through a real uvicorn server on 127.0.0.1, with one-second limits.

Deadlines are checked every 0.1 s; a connection closes between its deadline and 0.6 s after
it (more on a busy machine, but well within the bounds below).
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from ferryman.config import ConnectionSettings, load_settings
from ferryman.connection_limits import GuardedServer
from tests.slowloris import Address, hold, hold_in_thread

LATE_S = 1.6  # the sweep's 0.1 s, plus scheduling on a busy machine
EARLY_S = 0.005  # uvloop's timers run on libuv's millisecond clock: up to 1 ms early
FAST = ConnectionSettings(
    head_timeout_s=1, body_timeout_s=1, body_min_rate_bytes_s=1024, idle_timeout_s=1
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body and answers its length; /early answers 401 unread; /wait takes 2 s."""
    body = b""
    if scope["path"] != "/early":
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
    if scope["path"] == "/wait":
        await asyncio.sleep(2)
    status = 401 if scope["path"] == "/early" else 200
    answer = str(len(body)).encode()
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@contextmanager
def guarded(limits: ConnectionSettings = FAST) -> Iterator[Address]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = GuardedServer(config, limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def address() -> Iterator[Address]:
    with guarded() as bound:
        yield bound


def get(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def post_head(path: str = "/", length: int = 4096) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n".encode()


def error_of(answer: bytes) -> str:
    return str(json.loads(answer.partition(b"\r\n\r\n")[2])["error"])


def test_a_silent_connection_closes_after_the_head_timeout(address: Address) -> None:
    held = hold(address, b"", limit_s=5)
    assert 1 - EARLY_S <= held.closed_after_s <= 1 + LATE_S
    assert held.answer == b""  # no request began: nothing to answer


def test_a_trickled_head_is_answered_408(address: Address) -> None:
    held = hold(address, b"GET / HTTP/1.1\r\nHost: test\r\n", b"X-a: b\r\n", 0.2, limit_s=5)
    assert 1 - EARLY_S <= held.closed_after_s <= 1 + LATE_S
    assert held.answer.startswith(b"HTTP/1.1 408 ")
    assert "head was not complete within 1 s" in error_of(held.answer)


def test_a_trickled_body_is_answered_408(address: Address) -> None:
    held = hold(address, post_head(), b"a", 0.2, limit_s=5)
    assert 1 - EARLY_S <= held.closed_after_s <= 1 + LATE_S
    assert held.answer.startswith(b"HTTP/1.1 408 ")
    assert "plus 1 s per 1024 bytes" in error_of(held.answer)


def test_a_body_at_the_minimum_rate_is_read_in_full(address: Address) -> None:
    """8 KiB at 2 KiB/s takes 4 s, past the 1 s body timeout: each KiB earns a second."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(post_head(length=8192))
        for _ in range(16):
            time.sleep(0.25)
            sock.sendall(b"a" * 512)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\n8192")


def test_an_idle_keep_alive_connection_closes(address: Address) -> None:
    held = hold(address, get(), limit_s=5)
    assert held.answer.startswith(b"HTTP/1.1 200 ")
    assert 1 - EARLY_S <= held.closed_after_s <= 1 + LATE_S


def test_blank_lines_do_not_keep_an_idle_connection_open(address: Address) -> None:
    """Bytes that begin no request cancel uvicorn's keep-alive timer; the sweep times them."""
    held = hold(address, get(), b"\r\n", 0.2, limit_s=8)
    assert held.closed_after_s <= 1 + 2 * LATE_S
    assert held.answer.count(b"HTTP/1.1 ") == 1  # the answer, and no 408 after it


def test_a_trickled_body_after_an_early_answer_is_closed(address: Address) -> None:
    held = hold(address, post_head("/early"), b"a", 0.2, limit_s=5)
    assert held.answer.startswith(b"HTTP/1.1 401 ")
    assert held.answer.count(b"HTTP/1.1 ") == 1
    assert held.closed_after_s <= 1 + LATE_S


def test_a_request_queued_behind_a_slow_one_is_not_late(address: Address) -> None:
    """Pipelined: the second body is not read while /wait runs for 2 s (> body timeout)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(get("/wait") + post_head(length=5))
        time.sleep(0.5)
        sock.sendall(b"hello")
        answer = b""
        while answer.count(b"HTTP/1.1 200 ") < 2 and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert answer.endswith(b"\r\n\r\n5")


def test_past_the_cap_the_oldest_slow_connection_makes_room() -> None:
    limits = ConnectionSettings(head_timeout_s=30, max_connections=16)
    with guarded(limits) as bound:
        silent = [socket.create_connection(bound, timeout=5) for _ in range(16)]
        time.sleep(0.2)  # all accepted
        try:
            with socket.create_connection(bound, timeout=5) as sock:
                sock.sendall(get())
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            closed, _, _ = select.select(silent, [], [], 2)
            assert len(closed) == 1  # one silent connection (all equally old) made room
            assert closed[0].recv(1) == b""
        finally:
            for sock in silent:
                sock.close()


def test_when_every_connection_is_busy_the_newcomer_is_closed() -> None:
    limits = ConnectionSettings(max_connections=16, idle_timeout_s=1)
    with guarded(limits) as bound:
        busy = [hold_in_thread(bound, get("/wait"), limit_s=10) for _ in range(16)]
        time.sleep(0.5)  # all 16 are inside /wait
        late = hold(bound, get(), limit_s=5)
        assert late.closed_after_s < 1
        assert late.answer == b""
        assert all(wait().answer.startswith(b"HTTP/1.1 200 ") for wait in busy)


def test_the_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRYMAN_CONNECTIONS__HEAD_TIMEOUT_S", "5")
    connections = load_settings().connections
    assert connections.head_timeout_s == 5
    assert connections.idle_timeout_s <= 30  # RELIABILITY B8
