"""Who may call the control plane: a bearer token, a Host allow-list, an Origin check.

Loopback is not authentication (DNS rebinding reached Ray and MLflow), so every request is
checked in one middleware, before any route runs:

1. ``Host`` must name this server (loopback names, or the configured allowed hosts) → 403;
2. a state-changing method (POST, PUT, PATCH, DELETE) with an ``Origin`` other than one of
   those hosts → 403 (browsers always send Origin on cross-site requests);
3. every route but the open ones needs ``Authorization: Bearer <token>`` → 401; the signed
   ones (a webhook from another system, which cannot hold the token) check a signature of
   their own instead and answer 401 without it.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_FILE = "control-token"  # noqa: S105 - a file name, not a secret
OPEN_PATHS = frozenset({"/healthz", "/docs", "/openapi.json"})
SIGNED_PATHS = frozenset({"/api/v1/webhooks/mlflow"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


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


class SecurityMiddleware:
    """Host allow-list, Origin check and bearer-token auth for every HTTP request."""

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: Iterable[str] = ()) -> None:
        self._app = app
        self._token = token.encode() if token else None
        self._hosts = frozenset(h.lower() for h in (*LOOPBACK_NAMES, *allowed_hosts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self._app(scope, receive, send)
            return
        status, message = refusal
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="ferryman"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = {key.lower(): value for key, value in scope["headers"]}
        host = headers.get(b"host", b"").decode("latin-1")
        if _hostname(host) not in self._hosts:
            return 403, "the Host header does not name this server; refused (DNS rebinding guard)"
        origin = headers.get(b"origin")
        is_unsafe = scope["method"] not in SAFE_METHODS
        if is_unsafe and origin is not None and not self._is_own(origin):
            return 403, "cross-origin request refused; use the CLI, the SDK or the dashboard"
        if self._token is None or scope["path"] in OPEN_PATHS | SIGNED_PATHS:
            return None
        presented = headers.get(b"authorization", b"")
        scheme, _, credential = presented.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self._token):
            return (
                401,
                "a valid bearer token is required (see the control-token file in the data dir)",
            )
        return None

    def _is_own(self, origin: bytes) -> bool:
        return _hostname(urlsplit(origin.decode("latin-1")).netloc) in self._hosts


def _hostname(netloc: str) -> str:
    """``host[:port]`` → host, lowercased; IPv6 literals keep their brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
