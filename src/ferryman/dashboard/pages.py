"""The dashboard's routes: its pages, its static files, and logging in and out.

Every page is the same shell (``templates/index.html``): the JavaScript reads the address and
draws the page from ``/api/v1`` calls. The shell carries the session's CSRF token in a meta
tag. The security middleware has already refused or redirected a request without a valid
session before any route here runs, except for ``/ui/login`` and ``/ui/assets/``.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.requests import ClientDisconnect

from ferryman.dashboard.assets import Asset, load_assets, load_template
from ferryman.dashboard.session import (
    COOKIE_NAME,
    Sessions,
    clear_cookie_header,
    set_cookie_header,
)
from ferryman.registry import TokenBook
from ferryman.version import __version__

logger = logging.getLogger(__name__)

HOME = "/ui/"
PAGES = (
    HOME,
    "/ui/endpoints/{endpoint}",
    "/ui/models",
    "/ui/models/{model}",
    "/ui/rollouts",
    "/ui/rollouts/{rollout_id}",
    "/ui/events",
)
MAX_LOGIN_BODY_BYTES = 4096
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # Not no-referrer: with it, browsers send "Origin: null" on the page's own POSTs, which the
    # Origin check (rightly) refuses. same-origin sends no Referer to any other site.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
_NEXT = re.compile(r"/ui/[A-Za-z0-9._~%/?=&+-]*")
REFUSED_LOGIN = (
    "That token is not right. Copy it from the control-token file in the control plane's "
    "data dir (ferryman up printed it on first start), or use an operator or viewer token "
    "(ferryman tokens create --role viewer)."
)
DASHBOARD_ROLES = frozenset({"operator", "viewer"})
"""Scoped tokens that may log in (an inference token is for the gateway only)."""


class Dashboard:
    """Serves the dashboard for one token (``sessions`` None: auth is off, no login); the
    operator and viewer tokens in ``tokens`` may log in too."""

    def __init__(self, sessions: Sessions | None, tokens: TokenBook | None = None) -> None:
        self._sessions = sessions
        self._tokens = tokens
        self._assets = load_assets()
        self._shell = load_template("index.html")
        self._login = load_template("login.html")

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/", self.home, methods=["GET"])
        router.add_api_route("/ui", self.home, methods=["GET"])
        for path in PAGES:
            router.add_api_route(path, self.page, methods=["GET"])
        router.add_api_route("/ui/login", self.login_page, methods=["GET"])
        router.add_api_route("/ui/login", self.login, methods=["POST"])
        router.add_api_route("/ui/logout", self.logout, methods=["POST"])
        router.add_api_route("/ui/assets/{name:path}", self.asset, methods=["GET"])
        return router

    async def home(self) -> Response:
        return RedirectResponse(HOME, 303, headers=PAGE_HEADERS)

    async def page(self, request: Request) -> Response:
        cookie = request.cookies.get(COOKIE_NAME, "")
        csrf = self._sessions.csrf_token(cookie) if self._sessions and cookie else ""
        session = self._sessions.read(cookie) if self._sessions else None
        role = session.role if session is not None else "admin"
        body = (
            self._shell.replace("{{csrf_token}}", html.escape(csrf))
            .replace("{{version}}", html.escape(__version__))
            .replace("{{role}}", html.escape(role))
        )
        return HTMLResponse(body, headers={**PAGE_HEADERS, "cache-control": "no-store"})

    async def login_page(
        self, request: Request, after: Annotated[str, Query(alias="next")] = HOME
    ) -> Response:
        target = safe_next(after)
        if self._sessions is None or self._is_signed_in(request.cookies.get(COOKIE_NAME)):
            return RedirectResponse(target, 303, headers=PAGE_HEADERS)
        return self._login_response(target, "", 200)

    async def login(self, request: Request) -> Response:
        """Check the token from the form; on success set the session cookie and go on."""
        if self._sessions is None:
            return RedirectResponse(HOME, 303, headers=PAGE_HEADERS)
        form = await _read_form(request)
        if form is None:
            return self._login_response(HOME, "The form was too large; paste the token only.", 413)
        target = safe_next(form.get("next", HOME))
        signed_in = self._signed_in(self._sessions, form.get("token", "").strip())
        if signed_in is None:
            logger.warning("dashboard login refused (wrong token) from %s", _client(request))
            return self._login_response(target, REFUSED_LOGIN, 401)
        logger.info("dashboard login (%s) from %s", signed_in[0], _client(request))
        cookie = set_cookie_header(
            self._sessions.issue(*signed_in), self._sessions.ttl_s, request.url.scheme == "https"
        )
        return RedirectResponse(target, 303, headers={**PAGE_HEADERS, "set-cookie": cookie})

    def _is_signed_in(self, cookie: str | None) -> bool:
        """A valid session whose token (if a scoped one) is not revoked."""
        info = self._sessions.read(cookie) if self._sessions is not None else None
        if info is None or info.role == "admin":
            return info is not None
        return self._tokens is not None and self._tokens.is_active(info.token_id)

    def _signed_in(self, sessions: Sessions, presented: str) -> tuple[str, int] | None:
        """(role, token id) of a token that may log in; None for any other."""
        if sessions.is_token(presented):
            return "admin", 0
        found = self._tokens.find(presented.encode()) if self._tokens and presented else None
        if found is None or found.role not in DASHBOARD_ROLES:
            return None
        return found.role.value, found.id

    async def logout(self, request: Request) -> Response:
        """Clear the session cookie (the middleware checked the session and its CSRF token)."""
        cookie = clear_cookie_header(request.url.scheme == "https")
        return Response(status_code=204, headers={**PAGE_HEADERS, "set-cookie": cookie})

    async def asset(self, request: Request, name: str) -> Response:
        found: Asset | None = self._assets.get(name)
        if found is None:
            return Response(b"no such asset\n", 404, media_type="text/plain")
        headers = {
            "etag": found.etag,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
        }
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, 200, headers=headers, media_type=found.content_type)

    def _login_response(self, target: str, message: str, status: int) -> Response:
        body = (
            self._login.replace("{{next}}", html.escape(target))
            .replace("{{message}}", html.escape(message))
            .replace("{{message_class}}", "message" if message else "message hidden")
            .replace("{{version}}", html.escape(__version__))
        )
        return HTMLResponse(body, status, headers={**PAGE_HEADERS, "cache-control": "no-store"})


def safe_next(target: str) -> str:
    """Where to go after logging in: a dashboard page of this server, never another site."""
    if len(target) > 512 or not _NEXT.fullmatch(target) or target.startswith("/ui/login"):
        return HOME
    return target


async def _read_form(request: Request) -> dict[str, str] | None:
    """The URL-encoded form body; None past ``MAX_LOGIN_BODY_BYTES`` (never buffered past)."""
    received = bytearray()
    try:
        async for chunk in request.stream():
            received.extend(chunk)
            if len(received) > MAX_LOGIN_BODY_BYTES:
                return None
    except ClientDisconnect:
        return {}
    try:
        fields = parse_qs(received.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:
        return None
    return {key: values[0] for key, values in fields.items()}


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
