"""Limits through a real HTTP parser (uvicorn + httptools) on 127.0.0.1: B3 and B7."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ferryman.engines.onnx import OnnxEngine
from tests.serving.conftest import affine_model, replica, serving_in_thread


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    app = replica(OnnxEngine(affine_model()), max_body_bytes=64 * 1024)
    with serving_in_thread(app) as live:
        host, port = live.address.split(":")
        yield host, int(port)


def exchange(address: tuple[str, int], head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``); return what the server answers before it closes."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def post(path: str, headers: list[str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def test_a_lying_content_length_is_refused_before_the_body_arrives(
    address: tuple[str, int],
) -> None:
    head = post("/v2/models/tiny/infer", ["Content-Length: 1073741824"])
    answer = exchange(address, head, b"{" * 1024)  # 1 GiB promised, 1 KiB sent
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"limit is 65536" in answer


def test_many_small_chunks_are_cut_at_the_limit(address: tuple[str, int]) -> None:
    head = post("/v2/models/tiny/infer", ["Transfer-Encoding: chunked"])
    chunks = b"1\r\nx\r\n" * 100_000  # 100 000 one-byte chunks
    answer = exchange(address, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([f"X-Big: {'a' * 64 * 1024}"], b"the request headers total 65569 bytes"),
        ([f"X-H{i}: 1" for i in range(1000)], b"the request has 1002 headers"),
    ],
    ids=["one 64 KiB header", "1000 headers"],
)
def test_header_limits(address: tuple[str, int], headers: list[str], message: bytes) -> None:
    answer = exchange(address, post("/v2/models/tiny/infer", [*headers, "Content-Length: 0"]))
    assert answer.startswith(b"HTTP/1.1 431")
    assert message in answer
    assert b"connection: close" in answer
