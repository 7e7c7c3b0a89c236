"""Host and Origin checks (issue 14): the DNS-rebinding guard of the gateway and the replicas
too, over real sockets (clients will not send two Host headers, so the requests are bytes)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from ferryman.config import GatewaySettings
from ferryman.engines.onnx import OnnxEngine
from ferryman.gateway import Gateway
from ferryman.host_policy import HostPolicy
from tests.gateway.conftest import serving
from tests.serving.conftest import affine_model, replica, serving_in_thread
from tests.serving.test_bad_input import tensor

INFER = "/v2/models/tiny/infer"


def request(path: str, *headers: str, method: str = "GET", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *headers, f"content-length: {len(body)}",
             "connection: close"]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def exchange(address: str, raw: bytes) -> tuple[int, bytes]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return status_and_body(answer)


async def exchange_async(address: str, raw: bytes) -> tuple[int, bytes]:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return status_and_body(answer)


def refusals(address: str) -> list[tuple[str, str]]:
    """The cases every server refuses, as (raw request, expected status + words)."""
    port = address.rsplit(":", 1)[1]
    return [
        (f"Host: evil.example:{port}", "403 Host header does not name this server"),
        (f"Host: {address}\r\nHost: evil.example", "400 more than one Host header"),
        (f"Host: {address}\r\nOrigin: http://127.0.0.1:1", "403 cross-origin"),
        (f"Host: {address}\r\nOrigin: https://{address}", "403 cross-origin"),
        (f"Host: {address}\r\nOrigin: http://evil.example:{port}", "403 cross-origin"),
    ]


def test_a_replica_answers_only_requests_that_name_it() -> None:
    app = replica(OnnxEngine(affine_model()), allowed_hosts=("models.internal",))
    with serving_in_thread(app) as live:
        for headers, expected in refusals(live.address):
            status, body = exchange(
                live.address, request(INFER, headers, method="POST", body=tensor())
            )
            code, words = expected.split(" ", 1)
            assert status == int(code), headers
            assert words in json.loads(body)["error"], headers
        for host in (
            live.address,
            f"localhost:{live.address.rsplit(':', 1)[1]}",
            "models.internal",
        ):
            sent = request(INFER, f"Host: {host}", f"Origin: http://{host}", method="POST",
                           body=tensor())  # fmt: skip
            assert exchange(live.address, sent)[0] == 200, host
        payloads = request("/ferryman/v1/payloads", "Host: evil.example")
        assert exchange(live.address, payloads)[0] == 403  # raw inputs: not to a rebound page


@pytest.mark.anyio
async def test_the_gateway_answers_only_requests_that_name_it() -> None:
    gateway = Gateway(GatewaySettings(allowed_hosts=("models.example.com",)))
    async with serving(gateway, "on") as url:
        address = url.removeprefix("http://")
        for headers, expected in refusals(address):
            status, body = await exchange_async(address, request("/-/healthz", headers,
                                                                 method="POST"))  # fmt: skip
            code, words = expected.split(" ", 1)
            assert status == int(code), headers
            assert words in json.loads(body)["error"], headers
        for host in (address, "models.example.com", "[::1]"):
            sent = request("/v2/health/ready", f"Host: {host}")
            assert (await exchange_async(address, sent))[0] == 200, host


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("bound", "allowed", "host", "is_allowed"),
    [
        ("127.0.0.1", (), b"127.0.0.1:8080", True),
        ("127.0.0.1", (), b"LOCALHOST", True),
        ("127.0.0.1", (), b"[::1]:8080", True),
        ("127.0.0.1", (), b"127.0.0.1.evil.example", False),
        ("127.0.0.1", (), b"10.0.0.5:8080", False),
        ("10.0.0.5", (), b"10.0.0.5:8080", True),  # the bound address
        ("0.0.0.0", (), b"0.0.0.0:8080", False),
        ("0.0.0.0", ("api.example",), b"api.example", True),
        ("127.0.0.1", ("api.example",), b"api.example.evil", False),
    ],
)
def test_which_hosts_a_server_answers(
    bound: str, allowed: tuple[str, ...], host: bytes, is_allowed: bool
) -> None:
    refusal = HostPolicy.for_server(bound, 8080, allowed).refusal([(b"host", host)], "GET", "http")
    assert (refusal is None) == is_allowed


def test_a_request_without_host_is_refused() -> None:
    refusal = HostPolicy.for_server("127.0.0.1", 80).refusal([], "GET", "http")
    assert refusal is not None
    assert refusal.status_code == 403


def test_safe_methods_may_come_from_anywhere() -> None:
    """GETs carry Origin too (fetch); they change nothing and the Host check still holds."""
    policy = HostPolicy.for_server("127.0.0.1", 80)
    headers = [(b"host", b"127.0.0.1"), (b"origin", b"http://evil.example")]
    assert policy.refusal(headers, "GET", "http") is None
    assert policy.refusal(headers, "POST", "http") is not None


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
        [(b"origin", b"http://127.0.0.1:8080"), (b"origin", b"http://evil.example")],
    ],
    ids=["authorization", "origin"],
)
def test_a_second_credential_header_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    policy = HostPolicy.for_server("127.0.0.1", 8080)
    refusal = policy.refusal([(b"host", b"127.0.0.1:8080"), *headers], "GET", "http")
    assert refusal is not None
    assert refusal.status_code == 400
    assert "more than one Authorization or Origin header" in refusal.message
    one = [(b"host", b"127.0.0.1:8080"), headers[0]]
    assert policy.refusal(one, "GET", "http") is None
