"""RELIABILITY S1, S2, S7 against the real control-plane server."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import ControlSettings, load_settings
from ferryman.control.api.app import create_app
from ferryman.control.api.roles import ALLOWED, CONTROL_ROUTES, Access, access_of
from ferryman.control.api.security import (
    OPEN_PATHS,
    OPEN_PREFIXES,
    SIGNED_PATHS,
    TOKEN_FILE,
    load_or_create_token,
)
from ferryman.control.server import check_bind
from ferryman.errors import InvalidInput
from ferryman.registry import Registry, TokenRole
from ferryman.runtimes.local.gateway import gateway_pids
from tests.control.api.conftest import RunningServer
from tests.support import free_port as _free_port


def _every_route(registry: Registry) -> list[tuple[str, str]]:
    """(method, concrete path) for every route: the OpenAPI paths plus unlisted routes."""
    app = create_app(load_settings(), registry, "t")
    census = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    for path, methods in _walk(app.routes, ""):
        census.update((method, path) for method in methods)
    return sorted((method, re.sub(r"\{[^}]+\}", "x", path)) for method, path in census)


def _route_templates(registry: Registry) -> set[tuple[str, str]]:
    """(method, path template) of every route the app exposes (HEAD follows GET)."""
    app = create_app(load_settings(), registry, "t")
    found = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    for path, methods in _walk(app.routes, ""):
        found.update((method, path) for method in methods if method != "HEAD")
    return found


def test_every_control_route_has_an_auth_decision(control: RunningServer) -> None:
    """S1: a route added without a line in roles.CONTROL_ROUTES fails here (and needs the
    admin token until it gets one); a line for a route that is gone fails too."""
    exposed = _route_templates(control.registry)
    assert exposed - set(CONTROL_ROUTES) == set(), "routes without an auth decision"
    assert set(CONTROL_ROUTES) - exposed == set(), "decisions for routes that do not exist"


def test_scoped_tokens_get_only_what_their_role_may(control: RunningServer) -> None:
    """S1 for scoped tokens, every route and method over HTTP: an inference token → 403 on
    every control route; a viewer → 403 on every state-changing one; an operator → 403 on
    token and webhook management; each gets through (neither 401 nor 403) where it may."""
    tokens = {
        role: control.registry.tokens.create(f"census-{role.value}", role, "test",
                                             "x" if role is TokenRole.INFER else None).token
        for role in TokenRole
    }  # fmt: skip
    refused: dict[str, set[tuple[str, str]]] = {role.value: set() for role in TokenRole}
    for method, path in _every_route(control.registry):
        access = access_of(method, path)
        if access in (Access.OPEN, Access.SIGNED):
            continue
        for role, token in tokens.items():
            headers = {"authorization": f"Bearer {token}"}
            response = httpx.request(method, control.url + path, headers=headers)
            if role.value in ALLOWED[access]:
                assert response.status_code not in (401, 403), (role, method, path, response.text)
                continue
            assert response.status_code == 403, (role, method, path, response.text)
            if method != "HEAD":  # the same refusal as GET, without its body
                assert "token" in response.json()["error"]
            refused[role.value].add((method, path))
    changes = {(m, p) for m, p in _every_route(control.registry) if m not in {"GET", "HEAD"}}
    changes -= {("POST", "/ui/login"), ("POST", "/ui/logout"), ("POST", "/api/v1/webhooks/mlflow")}
    assert changes <= refused["viewer"]
    guarded = {
        (m, p)
        for m, p in _every_route(control.registry)
        if access_of(m, p) not in (Access.OPEN, Access.SIGNED)
    }
    assert refused["infer"] == guarded
    assert len(guarded) >= 50
    assert refused["operator"] == {
        ("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"), ("DELETE", "/api/v1/tokens/x"),
        ("PUT", "/api/v1/alert-webhooks/x"), ("DELETE", "/api/v1/alert-webhooks/x"),
        ("POST", "/api/v1/fleet/stop"),
    }  # fmt: skip


def _walk(routes: Iterable[object], prefix: str) -> Iterator[tuple[str, set[str]]]:
    """Every route's path and methods, into included routers too: FastAPI ≥ 0.120 keeps an
    included router as one entry (``original_router``) instead of copying its routes."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(path := getattr(route, "path", None), str):
            yield prefix + path, set(getattr(route, "methods", None) or {"GET"})


def test_every_route_needs_the_token(control: RunningServer) -> None:
    """S1: enumerate every route and method; no token (or a wrong one, or a forged session
    cookie) → 401, or for a dashboard page a 303 to the login page."""
    census = _every_route(control.registry)
    assert len(census) >= 15
    open_routes = set()
    for method, path in census:
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            continue  # declared open: checked below to hold nothing private
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": "Basic abc"},
            {"cookie": "ferryman_session=v1.1.forged.mac"},
        ):
            response = httpx.request(method, control.url + path, headers=headers)
            if _sent_to_login(response):
                assert method == "GET"
                assert path == "/" or path.startswith("/ui")
                continue
            if response.status_code != 401:
                open_routes.add(path)
                continue
            if method == "HEAD":  # the same refusal as GET, without its body
                continue
            if path in SIGNED_PATHS:  # a signature (or the route token) of its own
                assert any(w in response.json()["error"] for w in ("signature", "route token"))
                continue
            assert response.json()["error"].startswith("a valid bearer token is required")
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert open_routes == set()
    assert {"/openapi.json", "/healthz", "/ui/login"} <= {path for _, path in census}
    assert "/docs" not in {path for _, path in census}  # Swagger UI is off (see the README)
    pages = {path for method, path in census if path.startswith("/ui/") and method == "GET"}
    assert {"/ui/", "/ui/endpoints/x", "/ui/models/x", "/ui/rollouts/x"} <= pages


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_the_api_description_needs_the_token_and_swagger_ui_is_off(
    control: RunningServer, path: str
) -> None:
    """Issue 14: /docs loaded swagger-ui from a CDN on the API's origin, open to anyone."""
    assert httpx.get(control.url + path).status_code == 401
    with_token = httpx.get(control.url + path, headers={"authorization": f"Bearer {control.token}"})
    assert with_token.status_code == (200 if path == "/openapi.json" else 404)


def test_the_openapi_publishes_the_token_that_the_server_asks_for(
    control: RunningServer,
) -> None:
    schema = httpx.get(
        control.url + "/openapi.json", headers={"authorization": f"Bearer {control.token}"}
    ).json()
    assert schema["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "The token in the data dir's control-token file.",
    }  # fmt: skip
    assert schema["security"] == [{"bearerToken": []}]
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            # no exemption but the signed webhooks: every other route answers 401 without it
            assert operation.get("security", schema["security"]) == (
                [] if path in SIGNED_PATHS else [{"bearerToken": []}]
            ), path


def _sent_to_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/ui/login?")


def test_open_dashboard_routes_hold_nothing_private(control: RunningServer) -> None:
    """The login page and the static files are open; they carry no data and no token."""
    for path in ("/ui/login", "/ui/assets/app.css", "/ui/assets/js/main.js"):
        response = httpx.get(control.url + path)
        assert response.status_code == 200
        assert control.token not in response.text


def test_the_right_token_gets_through(control: RunningServer) -> None:
    response = httpx.get(
        control.url + "/api/v1/models", headers={"authorization": f"Bearer {control.token}"}
    )
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example"])
def test_foreign_host_headers_are_refused(control: RunningServer, host: str) -> None:
    """S7: a DNS-rebinding request names another host; refused even with the token."""
    response = httpx.get(
        control.url + "/api/v1/models",
        headers={"host": host, "authorization": f"Bearer {control.token}"},
    )
    assert response.status_code == 403
    assert "Host" in response.json()["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_cross_origin_changes_are_refused(control: RunningServer, method: str) -> None:
    """S7: state-changing methods from another origin → 403, DELETE included."""
    response = httpx.request(
        method,
        control.url + "/api/v1/models/digits/aliases/production",
        headers={"origin": "http://evil.example", "authorization": f"Bearer {control.token}"},
    )
    assert response.status_code == 403
    assert "cross-origin" in response.json()["error"]


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:1", "https://127.0.0.1:{port}", "http://localhost:{port}", "null"],
)
def test_an_origin_on_another_port_scheme_or_name_is_another_origin(
    control: RunningServer, origin: str
) -> None:
    """Issue 14: the Origin check compared host names only; scheme and port count too."""
    port = control.url.rsplit(":", 1)[1]
    response = httpx.post(
        control.url + "/api/v1/models/digits/aliases/production",
        headers={"origin": origin.format(port=port), "authorization": f"Bearer {control.token}"},
    )
    assert response.status_code == 403
    assert "cross-origin" in response.json()["error"]


def test_two_host_headers_are_refused(control: RunningServer) -> None:
    """Issue 14: duplicate Host headers were accepted (the last one won)."""
    host, port = control.url.removeprefix("http://").rsplit(":", 1)
    status, body = raw_exchange(
        host, int(port),
        b"GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
        b"Authorization: Bearer " + control.token.encode() + b"\r\nConnection: close\r\n\r\n",
    )  # fmt: skip
    assert status == 400
    assert b"more than one Host header" in body


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        (b"Authorization: Bearer wrong\r\nAuthorization: Bearer {token}\r\n", b"/api/v1/models"),
        (b"Authorization: Bearer {token}\r\nAuthorization: Bearer wrong\r\n", b"/api/v1/models"),
        (b"Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n", b"/api/v1/routes"),
        (b"Authorization: Bearer {token}\r\nOrigin: http://evil.example\r\n"
         b"Origin: http://127.0.0.1\r\n", b"/api/v1/models"),
    ],
    ids=["wrong-first", "wrong-last", "signed-route", "two-origins"],
)  # fmt: skip
def test_two_credentials_are_refused(control: RunningServer, headers: bytes, path: bytes) -> None:
    """Two Authorization headers: the middleware read the last, a route or a proxy in front
    may read the first (the gateway did), so which token acted depended on who asked."""
    host, port = control.url.removeprefix("http://").rsplit(":", 1)
    status, body = raw_exchange(
        host, int(port),
        b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + headers.replace(b"{token}", control.token.encode()) + b"Connection: close\r\n\r\n",
    )  # fmt: skip
    assert status == 400
    assert b"more than one Authorization or Origin header" in body


def raw_exchange(host: str, port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as bytes (clients refuse to send two Host headers); status, body."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_same_origin_changes_pass_the_origin_check(control: RunningServer) -> None:
    response = httpx.delete(
        control.url + "/api/v1/models/digits/aliases/production",
        headers={"origin": control.url, "authorization": f"Bearer {control.token}"},
    )
    assert response.status_code == 404  # past the checks: the model does not exist


def test_token_file_is_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path)
    again = load_or_create_token(tmp_path)
    assert first.is_new
    assert not again.is_new
    assert first.value == again.value
    assert len(first.value) >= 40
    assert stat.S_IMODE(os.stat(tmp_path / TOKEN_FILE).st_mode) == 0o600


@pytest.mark.parametrize(
    ("host", "auth", "insecure", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("::1", False, False, False),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, False, True),
        ("10.1.2.3", False, False, True),
        ("0.0.0.0", False, True, False),
    ],
)
def test_non_loopback_bind_without_auth_is_refused(
    host: str, auth: bool, insecure: bool, refused: bool
) -> None:
    """S2."""
    control = ControlSettings(host=host, auth_required=auth, allow_insecure_bind=insecure)
    settings = load_settings(control=control)
    if refused:
        with pytest.raises(InvalidInput, match="without authentication"):
            check_bind(settings)
    else:
        check_bind(settings)


@pytest.mark.e2e
def test_ferryman_up_listens_on_loopback_only_and_shows_the_token_once(tmp_path: Path) -> None:
    """S2: a fresh start binds 127.0.0.1; the CLI refuses 0.0.0.0 without auth."""
    ferryman = str(Path(sys.executable).with_name("ferryman"))
    port, gateway_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "FERRYMAN_DATA_DIR": str(tmp_path / "data"),
        "FERRYMAN_GATEWAY__PORT": str(gateway_port),
        "COLUMNS": "200",
    }
    process = subprocess.Popen(
        [ferryman, "up", "--port", str(port)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(5)]
        token = (tmp_path / "data" / TOKEN_FILE).read_text().strip()
        assert any(token in line for line in banner)
        assert f"Dashboard: http://127.0.0.1:{port}/ui/" in "".join(banner)
        _wait_until_listening(port)
        assert _listening_addresses(port) == {"127.0.0.1"}
        _wait_until_listening(gateway_port, path="/-/healthz")
        assert _listening_addresses(gateway_port) == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(timeout=10)
        for gateway in gateway_pids(tmp_path / "data" / "gateway.json"):  # and its standby
            os.kill(gateway, signal.SIGTERM)
    refused = subprocess.run(
        [ferryman, "up", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True, text=True, check=False,
        env={**env, "FERRYMAN_CONTROL__AUTH_REQUIRED": "false"},
    )  # fmt: skip
    assert refused.returncode == 1
    assert "without authentication" in refused.stderr


def _wait_until_listening(port: int, path: str = "/healthz") -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("ferryman up did not start listening")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of TCP sockets listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                if len(address) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    found.add(address)
    return found
