"""Who may call the control plane: a bearer token or a dashboard session, Host and Origin checks.

Loopback is not authentication (DNS rebinding reached Ray and MLflow), so every request is
checked in one middleware, before any route runs:

1. ``Host`` must name this server (loopback names, or the configured allowed hosts) → 403;
2. a state-changing method (POST, PUT, PATCH, DELETE) with an ``Origin`` other than one of
   those hosts → 403 (browsers always send Origin on cross-site requests);
3. every route but the open ones needs ``Authorization: Bearer <token>`` (CLI, SDK) or a
   valid dashboard session cookie (``ferryman_session``); a session's state-changing request
   must also carry its CSRF token in ``X-CSRF-Token`` → 403 without it;
4. without either, a browser's GET of a dashboard page (``/``, ``/ui…``) is sent to
   ``/ui/login`` (303); anything else → 401.
5. the signed routes (a webhook from another system, which cannot hold the token) check a
   signature of their own instead and answer 401 without it.
6. a scoped token (or the session it logged in) gets only what its role may do
   (:mod:`ferryman.control.api.roles`) → 403 for the rest; the routes learn its id
   (``request.state.token_id``), so the audit log names the token that acted.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from ferryman.control.api.roles import ADMIN, role_refusal
from ferryman.dashboard.session import COOKIE_NAME, CSRF_HEADER, Sessions
from ferryman.host_policy import HostPolicy
from ferryman.registry import TokenBook

TOKEN_FILE = "control-token"  # noqa: S105 - a file name, not a secret
OPEN_PATHS = frozenset({"/healthz", "/ui/login"})
OPEN_PREFIXES = ("/ui/assets/",)
"""The dashboard's login page and its static files (the same public files for everyone)."""
PAGE_PREFIX = "/ui"
LOGIN_PATH = "/ui/login"
SIGNED_PATHS = frozenset({"/api/v1/webhooks/mlflow", "/api/v1/routes"})
"""Routes that verify a signature or token of their own (see their modules) instead of the
control token: the MLflow webhook's signature, the gateways' route token."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_ID_STATE = "token_id"  # noqa: S105 - a request.state key, not a secret
"""``request.state`` key: the id of the scoped token that authenticated (absent for admin)."""


def declare_auth(app: FastAPI) -> None:
    """Publish the bearer token in ``app``'s OpenAPI (what the middleware enforces): one
    ``bearerToken`` scheme required by every operation but the signed webhooks."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in the data dir's control-token file.",
                }
            }
            schema["security"] = [{"bearerToken": []}]
            for path in SIGNED_PATHS:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []  # signed instead (see the route's module)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass(frozen=True)
class Token:
    value: str
    is_new: bool


def load_or_create_token(data_dir: Path) -> Token:
    """The API token in ``data_dir``; created (mode 0600) on first start."""
    path = data_dir / TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Token(path.read_text().strip(), is_new=False)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return Token(value, is_new=True)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    location: str | None = None


class SecurityMiddleware:
    """Host allow-list, Origin check, and bearer-token or session auth for every request."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        allowed_hosts: Iterable[str] = (),
        *,
        sessions: Sessions | None = None,
        bound_host: str = "127.0.0.1",
        tokens: TokenBook | None = None,
    ) -> None:
        self._app = app
        self._token = token.encode() if token else None
        self._sessions = sessions
        self._book = tokens
        self._hosts = HostPolicy.for_server(bound_host, None, allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self._app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        if refusal.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="ferryman"'))
        if refusal.location is not None:
            headers.append((b"location", refusal.location.encode("latin-1")))
        body = json.dumps({"error": refusal.message}).encode()
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refusal(self, scope: Scope) -> Refusal | None:
        headers = {key.lower(): value for key, value in scope["headers"]}
        return self._origin_refusal(scope) or self._auth_refusal(scope, headers)

    def _origin_refusal(self, scope: Scope) -> Refusal | None:
        """Requests that name another host (or two), or change state from another origin."""
        refusal = self._hosts.refusal(
            scope["headers"], scope["method"], scope.get("scheme", "http")
        )
        return None if refusal is None else Refusal(refusal.status_code, refusal.message)

    def _auth_refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Refusal | None:
        """Requests without the token or a session (and a session's changes without CSRF)."""
        path: str = scope["path"]
        is_open = path in OPEN_PATHS or path in SIGNED_PATHS or path.startswith(OPEN_PREFIXES)
        if self._token is None or is_open:
            return None
        if _has_token(headers, self._token):
            return None
        scoped = self._book.find(_bearer(headers)) if self._book is not None else None
        if scoped is not None:
            scope.setdefault("state", {})[TOKEN_ID_STATE] = scoped.id
            return _forbidden(role_refusal(scoped.role, scope["method"], path))
        is_unsafe = scope["method"] not in SAFE_METHODS
        if self._sessions is not None and (cookie := _session_cookie(headers, self._sessions)):
            refusal = _csrf_refusal(self._sessions, cookie, headers) if is_unsafe else None
            return refusal or self._session_role_refusal(scope, cookie)
        if not is_unsafe and (path == "/" or path.startswith(PAGE_PREFIX)):
            return Refusal(303, "log in first", _login_location(scope))
        return Refusal(
            401, "a valid bearer token is required (see the control-token file in the data dir)"
        )

    def _session_role_refusal(self, scope: Scope, cookie: str) -> Refusal | None:
        """A scoped token's session: its token must still be active, and its role allow this."""
        info = self._sessions.read(cookie) if self._sessions is not None else None
        if info is None or info.role == ADMIN:
            return None
        if self._book is None or not self._book.is_active(info.token_id):
            path: str = scope["path"]
            if scope["method"] in SAFE_METHODS and (path == "/" or path.startswith(PAGE_PREFIX)):
                return Refusal(303, "log in again", _login_location(scope))
            return Refusal(401, "the token this session logged in with was revoked; log in again")
        scope.setdefault("state", {})[TOKEN_ID_STATE] = info.token_id
        return _forbidden(role_refusal(info.role, scope["method"], scope["path"]))


def _has_token(headers: dict[bytes, bytes], token: bytes) -> bool:
    scheme, _, credential = headers.get(b"authorization", b"").partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), token)


def _bearer(headers: dict[bytes, bytes]) -> bytes:
    """The bearer credential presented (empty without one)."""
    scheme, _, credential = headers.get(b"authorization", b"").partition(b" ")
    return credential.strip() if scheme.lower() == b"bearer" else b""


def _forbidden(message: str | None) -> Refusal | None:
    return None if message is None else Refusal(403, message)


def _session_cookie(headers: dict[bytes, bytes], sessions: Sessions) -> str | None:
    """The request's dashboard session cookie, if it carries a valid one."""
    if b"cookie" not in headers:
        return None
    cookie = cookie_parser(headers[b"cookie"].decode("latin-1")).get(COOKIE_NAME)
    return cookie if sessions.is_valid(cookie) else None


def _csrf_refusal(sessions: Sessions, cookie: str, headers: dict[bytes, bytes]) -> Refusal | None:
    presented = headers.get(CSRF_HEADER.encode(), b"").decode("latin-1")
    if sessions.is_csrf_valid(cookie, presented):
        return None
    return Refusal(
        403,
        f"a dashboard change needs its CSRF token in the {CSRF_HEADER} header; "
        "reload the dashboard page and try again",
    )


def _login_location(scope: Scope) -> str:
    """``/login?next=<this page>``: the page to come back to after logging in."""
    page = scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        page = f"{page}?{query}"
    return f"{LOGIN_PATH}?next={quote(page, safe='')}"
