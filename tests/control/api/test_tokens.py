"""Scoped tokens (issue 14) against a real control-plane server on 127.0.0.1: created by the
admin only, shown once, stored hashed, refused at once when revoked, last use written
lazily; operator and viewer tokens log in to the dashboard with their role."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ferryman.config import load_settings
from ferryman.registry import Registry, TokenBook, TokenRole, token_digest
from tests.control.api.conftest import RunningServer
from tests.dashboard.conftest import csrf_of, log_in, seed


def admin(control: RunningServer) -> dict[str, str]:
    return {"authorization": f"Bearer {control.token}"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def create(control: RunningServer, **body: object) -> httpx.Response:
    return httpx.post(control.url + "/api/v1/tokens", json=body, headers=admin(control))


def test_a_token_is_shown_once_and_stored_only_as_its_digest(control: RunningServer) -> None:
    created = create(control, name="grafana", role="viewer")
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert re.fullmatch(r"fm_[A-Za-z0-9_-]{43}", token)  # 256 random bits
    record = created.json()["record"]
    assert (record["name"], record["role"], record["endpoint"]) == ("grafana", "viewer", None)
    assert record["last_used_at"] is None

    listed = httpx.get(control.url + "/api/v1/tokens", headers=admin(control))
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [record["id"]]
    assert token not in listed.text
    assert "token" not in listed.json()[0]
    database = (control.settings.data_dir / "registry.db").read_bytes()
    wal = control.settings.data_dir / "registry.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert token.encode() not in stored
    assert token_digest(token).encode() in stored
    events = control.registry.list_events(limit=5)
    assert events[-1].action == "token.created"
    assert token not in str(events[-1].details)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "ci", "role": "infer"}, "an infer token names its endpoint"),
        ({"name": "ci", "role": "viewer", "endpoint": "digits"}, "not tied to an endpoint"),
        ({"name": "ci", "role": "root"}, "role"),
        ({"name": "../x", "role": "viewer"}, "token name"),
    ],
)
def test_a_bad_token_request_says_what_is_wrong(
    control: RunningServer, body: dict[str, object], message: str
) -> None:
    answer = create(control, **body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_a_revoked_token_is_refused_at_once(control: RunningServer) -> None:
    created = create(control, name="ops", role="operator").json()
    token, token_id = created["token"], created["record"]["id"]
    models = control.url + "/api/v1/models"
    assert httpx.get(models, headers=bearer(token)).status_code == 200

    revoked = httpx.delete(f"{control.url}/api/v1/tokens/{token_id}", headers=admin(control))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    answer = httpx.get(models, headers=bearer(token))
    assert answer.status_code == 401
    again = httpx.delete(f"{control.url}/api/v1/tokens/{token_id}", headers=admin(control))
    assert again.status_code == 409
    assert (
        httpx.delete(f"{control.url}/api/v1/tokens/999", headers=admin(control)).status_code == 404
    )
    listed = httpx.get(control.url + "/api/v1/tokens?include_revoked=true", headers=admin(control))
    assert [t["revoked_at"] is not None for t in listed.json()] == [True]
    assert httpx.get(control.url + "/api/v1/tokens", headers=admin(control)).json() == []


def test_only_the_admin_manages_tokens(control: RunningServer) -> None:
    operator = create(control, name="ops", role="operator").json()["token"]
    for method, path in (("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"),
                         ("DELETE", "/api/v1/tokens/1")):  # fmt: skip
        answer = httpx.request(method, control.url + path, headers=bearer(operator),
                               json={"name": "mine", "role": "operator"})  # fmt: skip
        assert answer.status_code == 403
        assert "needs the admin token" in answer.json()["error"]
    assert len(control.registry.tokens.list()) == 1


def test_last_use_is_written_lazily(tmp_path: Path) -> None:
    """Not on every request: at most once per interval, for every token used since."""
    registry = Registry.open(load_settings(data_dir=tmp_path))
    try:
        issued = registry.tokens.create("ci", TokenRole.VIEWER, "test")
        now = [0.0]
        book = TokenBook(registry.tokens, refresh_s=1.0, last_used_every_s=60.0,
                         clock=lambda: now[0])  # fmt: skip
        before = datetime.now(UTC)
        found = book.find(issued.token.encode())
        assert found is not None
        assert found.role is TokenRole.VIEWER
        assert book.find(b"fm_wrong") is None
        now[0] = 59.0
        book.find(issued.token.encode())
        assert registry.tokens.list()[0].last_used_at is None  # not yet written
        now[0] = 61.0
        book.find(issued.token.encode())
        last_used = registry.tokens.list()[0].last_used_at
        assert last_used is not None
        assert last_used >= before
        registry.tokens.revoke(issued.record.id, "test")
        now[0] = 62.5  # the next reload (refresh_s later) drops it
        assert book.find(issued.token.encode()) is None
    finally:
        registry.close()


def test_a_viewer_session_reads_and_cannot_act(control: RunningServer) -> None:
    seed(control.registry)
    created = create(control, name="watcher", role="viewer").json()
    with log_in(control.url, created["token"]) as browser:
        page = browser.get("/ui/")
        assert page.status_code == 200
        assert '<meta name="ferryman-role" content="viewer">' in page.text
        assert created["token"] not in page.text
        assert browser.get("/api/v1/deployments/digits").status_code == 200
        csrf = csrf_of(browser)
        refused = browser.post("/api/v1/deployments/digits/scale", json={"replicas": 3},
                               headers={"x-csrf-token": csrf})  # fmt: skip
        assert refused.status_code == 403
        assert "a viewer token may not POST" in refused.json()["error"]
        assert control.registry.deployments.get("digits").spec.variants[0].replicas == 1
        assert browser.post("/ui/logout", headers={"x-csrf-token": csrf}).status_code == 204


def test_an_operator_session_acts_until_its_token_is_revoked(control: RunningServer) -> None:
    seed(control.registry)
    created = create(control, name="oncall", role="operator").json()
    with log_in(control.url, created["token"]) as browser:
        assert '<meta name="ferryman-role" content="operator">' in browser.get("/ui/").text
        csrf = {"x-csrf-token": csrf_of(browser)}
        scaled = browser.post("/api/v1/deployments/digits/scale", json={"replicas": 3},
                              headers=csrf)  # fmt: skip
        assert scaled.status_code == 200
        assert browser.get("/api/v1/tokens").status_code == 403
        httpx.delete(f"{control.url}/api/v1/tokens/{created['record']['id']}",
                     headers=admin(control))  # fmt: skip
        ended = browser.get("/api/v1/models")
        assert ended.status_code == 401
        assert "revoked" in ended.json()["error"]
        page = browser.get("/ui/endpoints/digits")  # a page goes back to the login, once
        assert page.status_code == 303
        assert page.headers["location"].startswith("/ui/login?next=")
        assert browser.get(page.headers["location"]).status_code == 200


def test_the_audit_log_names_the_scoped_token_that_acted(control: RunningServer) -> None:
    """The ferryman-actor header is a name the caller picks; an operator token holder who
    sent 'admin' was recorded as api:admin. The token's id goes beside it, by token and by
    the session it logged in."""
    seed(control.registry)
    created = create(control, name="oncall", role="operator").json()
    token, token_id = created["token"], created["record"]["id"]
    scale = control.url + "/api/v1/deployments/digits/scale"
    spoofed = httpx.post(scale, json={"replicas": 2},
                         headers={**bearer(token), "ferryman-actor": "admin"})  # fmt: skip
    assert spoofed.status_code == 200
    assert spoofed.json()["updated_by"] == f"api:admin:token-{token_id}"
    assert httpx.post(scale, json={"replicas": 3}, headers=bearer(token)).json()[
        "updated_by"] == f"api:token-{token_id}"  # fmt: skip
    with log_in(control.url, token) as browser:
        by_session = browser.post("/api/v1/deployments/digits/scale", json={"replicas": 1},
                                  headers={"x-csrf-token": csrf_of(browser)})  # fmt: skip
        assert by_session.json()["updated_by"] == f"api:token-{token_id}"
    by_admin = httpx.post(scale, json={"replicas": 2},
                          headers={**admin(control), "ferryman-actor": "alice"})  # fmt: skip
    assert by_admin.json()["updated_by"] == "api:alice"
    actors = [event.actor for event in control.registry.list_events(limit=4)]
    assert f"api:admin:token-{token_id}" in actors


def test_an_actor_name_too_long_for_the_audit_log_is_refused(control: RunningServer) -> None:
    seed(control.registry)
    answer = httpx.post(control.url + "/api/v1/deployments/digits/scale", json={"replicas": 2},
                        headers={**admin(control), "ferryman-actor": "a" * 128})  # fmt: skip
    assert answer.status_code == 400
    assert "ferryman-actor header is too long" in answer.json()["error"]
    assert control.registry.deployments.get("digits").spec.variants[0].replicas == 1


def test_an_inference_token_cannot_log_in(control: RunningServer) -> None:
    token = create(control, name="app", role="infer", endpoint="digits").json()["token"]
    with httpx.Client(base_url=control.url) as browser:
        answer = browser.post("/ui/login", data={"token": token})
        assert answer.status_code == 401
        assert "ferryman_session" not in answer.headers.get("set-cookie", "")


def test_the_admin_page_says_admin(control: RunningServer) -> None:
    with log_in(control.url, control.token) as browser:
        assert '<meta name="ferryman-role" content="admin">' in browser.get("/ui/").text
