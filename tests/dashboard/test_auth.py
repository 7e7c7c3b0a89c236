"""Dashboard login, session cookie and CSRF against the real control plane (RELIABILITY S6, S7).

HTTP only (httpx plays the browser); the same story in real Chromium is in test_browser.py.
"""

from __future__ import annotations

import http.client
import logging
import re
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
import trustme
import uvicorn
from fastapi import FastAPI

from ferryman.config import load_settings
from ferryman.control.api.app import create_app
from ferryman.dashboard.pages import PAGES
from ferryman.registry import Registry
from tests.control.api.conftest import RunningServer
from tests.dashboard.conftest import csrf_of, log_in, seed

CONCRETE_PAGES = [re.sub(r"\{[^}]+\}", "x1", page) for page in PAGES]


def _generation(control: RunningServer) -> int:
    return control.registry.deployments.get("digits").generation


@pytest.mark.parametrize("page", [*CONCRETE_PAGES, "/ui/endpoints/digits?range=3600", "/"])
def test_a_page_without_a_session_redirects_to_login(control: RunningServer, page: str) -> None:
    answer = httpx.get(control.url + page)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/ui/login?next=")
    login = httpx.get(control.url + location)
    assert login.status_code == 200
    assert 'name="token"' in login.text


@pytest.mark.parametrize("path", ["/api/v1/models", "/metrics", "/no-such-page"])
def test_anything_but_a_page_without_a_session_is_401(control: RunningServer, path: str) -> None:
    """Machines (Prometheus, the SDK) get 401, never a redirect to an HTML login page."""
    answer = httpx.get(control.url + path)
    assert answer.status_code == 401
    assert "bearer token" in answer.json()["error"]


def test_a_wrong_token_is_refused_with_a_message(
    control: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = httpx.post(control.url + "/ui/login", data={"token": "not-the-token"})
    assert answer.status_code == 401
    assert "That token is not right" in answer.text
    assert "set-cookie" not in answer.headers
    assert "not-the-token" not in answer.text
    assert "not-the-token" not in caplog.text
    assert "login refused" in caplog.text


def test_logging_in_sets_a_strict_httponly_cookie_and_goes_back(
    control: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = httpx.post(
        control.url + "/ui/login", data={"token": control.token, "next": "/ui/models/digits"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/models/digits"
    cookie = answer.headers["set-cookie"]
    assert re.fullmatch(
        r"ferryman_session=v2\.\d+\.[\w-]+\.admin\.0\.[\w-]+; Max-Age=43200; Path=/; HttpOnly; "
        r"SameSite=Strict",
        cookie,
    )
    assert control.token not in cookie
    assert control.token not in caplog.text


@pytest.mark.parametrize(
    ("asked", "went"),
    [
        ("/ui/endpoints/digits?range=60", "/ui/endpoints/digits?range=60"),
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/\\evil.example", "/ui/"),
        ("/ui/\r\nSet-Cookie: x=1", "/ui/"),
        ("/api/v1/models", "/ui/"),
        ("/ui/login", "/ui/"),
        ("", "/ui/"),
    ],
)
def test_after_login_only_dashboard_pages_are_gone_to(
    control: RunningServer, asked: str, went: str
) -> None:
    """No open redirect: ``next`` must be a page of this dashboard."""
    answer = httpx.post(control.url + "/ui/login", data={"token": control.token, "next": asked})
    assert answer.status_code == 303
    assert answer.headers["location"] == went


def test_a_session_reads_the_api_and_the_page_carries_no_token(control: RunningServer) -> None:
    """S6: the token appears in no page and no script; the page gets its CSRF token only."""
    with log_in(control.url, control.token) as browser:
        assert browser.get("/api/v1/models").status_code == 200
        page = browser.get("/ui/")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        csrf = csrf_of(browser)
        assert len(csrf) >= 40
        for text in [page.text, *(browser.get(src).text for src in _assets(page.text))]:
            assert control.token not in text
        login_page = httpx.get(control.url + "/ui/login")
        assert control.token not in login_page.text


def _assets(html: str) -> list[str]:
    found = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', html)
    assert found
    return found


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-csrf-token": ""},
        {"x-csrf-token": "forged"},
    ],
)
def test_a_change_without_its_csrf_token_is_refused_and_changes_nothing(
    control: RunningServer, headers: dict[str, str]
) -> None:
    """S7: the cookie alone (what a forged cross-site form would carry) changes nothing."""
    seed(control.registry)
    before = _generation(control)
    events = len(control.registry.list_events(limit=1000))
    with log_in(control.url, control.token) as browser:
        answer = browser.post(
            "/api/v1/deployments/digits/scale", json={"replicas": 3}, headers=headers
        )
    assert answer.status_code == 403
    assert "CSRF token" in answer.json()["error"]
    assert _generation(control) == before
    assert len(control.registry.list_events(limit=1000)) == events


def test_another_sessions_csrf_token_is_refused(control: RunningServer) -> None:
    seed(control.registry)
    with log_in(control.url, control.token) as mine, log_in(control.url, control.token) as other:
        answer = mine.post(
            "/api/v1/deployments/digits/scale",
            json={"replicas": 3},
            headers={"x-csrf-token": csrf_of(other)},
        )
    assert answer.status_code == 403


def test_a_change_with_its_csrf_token_goes_through(control: RunningServer) -> None:
    seed(control.registry)
    before = _generation(control)
    with log_in(control.url, control.token) as browser:
        answer = browser.post(
            "/api/v1/deployments/digits/scale",
            json={"replicas": 2},
            headers={"x-csrf-token": csrf_of(browser)},
        )
    assert answer.status_code == 200, answer.text
    assert _generation(control) == before + 1
    assert control.registry.deployments.get("digits").spec.variants[0].replicas == 2


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_a_cross_site_change_is_refused_even_with_cookie_and_csrf(
    control: RunningServer, origin: str
) -> None:
    seed(control.registry)
    before = _generation(control)
    with log_in(control.url, control.token) as browser:
        csrf = csrf_of(browser)
        answer = browser.post(
            "/api/v1/deployments/digits/scale",
            json={"replicas": 3},
            headers={"x-csrf-token": csrf, "origin": origin},
        )
    assert answer.status_code == 403
    assert "cross-origin" in answer.json()["error"]
    assert _generation(control) == before


def test_a_cross_site_login_is_refused(control: RunningServer) -> None:
    answer = httpx.post(
        control.url + "/ui/login",
        data={"token": control.token},
        headers={"origin": "http://evil.example"},
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_bearer_clients_need_no_csrf_token(control: RunningServer) -> None:
    """The CLI and the SDK keep working unchanged."""
    seed(control.registry)
    answer = httpx.post(
        control.url + "/api/v1/deployments/digits/scale",
        json={"replicas": 2},
        headers={"authorization": f"Bearer {control.token}"},
    )
    assert answer.status_code == 200


def test_logout_needs_the_csrf_token_and_clears_the_cookie(control: RunningServer) -> None:
    with log_in(control.url, control.token) as browser:
        refused = browser.post("/ui/logout")
        assert refused.status_code == 403
        answer = browser.post("/ui/logout", headers={"x-csrf-token": csrf_of(browser)})
        assert answer.status_code == 204
        assert answer.headers["set-cookie"].startswith("ferryman_session=; Max-Age=0; Path=/;")
        assert "ferryman_session" not in browser.cookies
        page = browser.get("/ui/")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/ui/login")


def test_a_logged_in_visit_to_login_goes_to_the_dashboard(control: RunningServer) -> None:
    with log_in(control.url, control.token) as browser:
        answer = browser.get("/ui/login?next=/ui/models")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/models"


def test_pages_carry_security_headers(control: RunningServer) -> None:
    with log_in(control.url, control.token) as browser:
        for answer in (browser.get("/ui/"), httpx.get(control.url + "/ui/login")):
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert "unsafe-eval" not in policy
            assert "frame-ancestors 'none'" in policy
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "same-origin"
            assert "<script>" not in answer.text  # no inline script: the CSP would block it


def test_assets_are_a_fixed_table_with_etags(control: RunningServer) -> None:
    script = httpx.get(control.url + "/ui/assets/js/main.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(
        control.url + "/ui/assets/js/main.js", headers={"if-none-match": script.headers["etag"]}
    )
    assert again.status_code == 304
    port = int(control.url.rsplit(":", 1)[1])
    for name in ["nope.js", "../templates/index.html", "%2e%2e/session.py", "js/../../pages.py"]:
        raw = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # sends the path as is
        raw.request("GET", f"/ui/assets/{name}")
        answer = raw.getresponse()
        assert answer.status == 404, name
        assert answer.read() == b"no such asset\n"
        raw.close()


def test_a_huge_login_form_is_refused_without_reading_it_all(control: RunningServer) -> None:
    answer = httpx.post(control.url + "/ui/login", content=b"token=" + b"x" * 100_000)
    assert answer.status_code == 413


def test_the_cookie_is_secure_over_tls(tmp_path: Path) -> None:
    """S7 over HTTPS: the session cookie gets the Secure flag."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    settings = load_settings(data_dir=tmp_path / "data")
    registry = Registry.open(settings)
    app = create_app(settings, registry, "tls-token")
    server, thread, url = _serve(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file))
    try:
        trusted = ssl.create_default_context(cafile=str(ca_file))
        answer = httpx.post(url + "/ui/login", data={"token": "tls-token"}, verify=trusted)
        assert answer.status_code == 303
        assert answer.headers["set-cookie"].endswith("; HttpOnly; SameSite=Strict; Secure")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        registry.close()


def test_without_auth_there_is_no_login(tmp_path: Path) -> None:
    """auth_required=false (loopback only): pages open directly, the login page steps aside."""
    settings = load_settings(data_dir=tmp_path / "data")
    registry = Registry.open(settings)
    open_server, thread, url = _serve(create_app(settings, registry, None))
    try:
        assert httpx.get(url + "/ui/").status_code == 200
        login = httpx.get(url + "/ui/login")
        assert login.status_code == 303
        assert login.headers["location"] == "/ui/"
        cross = httpx.post(
            url + "/api/v1/deployments/x/scale", json={}, headers={"origin": "http://evil.example"}
        )
        assert cross.status_code == 403
    finally:
        open_server.should_exit = True
        thread.join(timeout=10)
        registry.close()


def _serve(app: FastAPI, **tls: str) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **tls)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    scheme = "https" if tls else "http"
    return server, thread, f"{scheme}://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
