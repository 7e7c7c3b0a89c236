"""Dashboard sessions: a signed, expiring cookie and the CSRF token bound to it.

Stateless. The cookie is ``v2.<issued_at>.<nonce>.<role>.<token_id>.<mac>``, its MAC an
HMAC-SHA256 under a key derived from the API token, so rotating the token ends every session
and nothing is stored on the server. ``role`` is ``admin`` (token id 0) or the role of the
scoped token that logged in; the middleware ends such a session when that token is revoked.
Logging out clears the browser's cookie; a copied cookie stays valid until it expires
(``control.session_ttl_s``), the price of keeping no server state.

The CSRF token is a second HMAC, of the cookie: the dashboard page carries it in a meta tag
and its JavaScript sends it as ``X-CSRF-Token`` on every state change. A page of another site
can neither read it (HttpOnly cookie, same-origin page) nor compute it (keyed MAC).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ferryman.types import Clock

COOKIE_NAME = "ferryman_session"
CSRF_HEADER = "x-csrf-token"
_VERSION = "v2"
_ROLES = frozenset({"admin", "operator", "viewer"})
_KEY_LABEL = b"ferryman dashboard session key v1"
_CLOCK_SKEW_S = 60.0


@dataclass(frozen=True)
class SessionInfo:
    """Who a valid session cookie belongs to."""

    role: str
    token_id: int


class Sessions:
    """Issue and check dashboard sessions for one API token.

    >>> sessions = Sessions("the-api-token", ttl_s=3600)
    >>> cookie = sessions.issue()
    >>> sessions.is_valid(cookie), sessions.is_valid(cookie + "x")
    (True, False)
    >>> sessions.is_csrf_valid(cookie, sessions.csrf_token(cookie))
    True
    """

    def __init__(self, token: str, ttl_s: float, clock: Clock = time.time) -> None:
        self._key = hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._token_digest = hashlib.sha256(token.encode()).digest()
        self.ttl_s = ttl_s
        self._clock = clock

    def is_token(self, presented: str) -> bool:
        """True when ``presented`` is the API token (compared in constant time)."""
        digest = hashlib.sha256(presented.encode()).digest()
        return bool(presented) and hmac.compare_digest(digest, self._token_digest)

    def issue(self, role: str = "admin", token_id: int = 0) -> str:
        """A new session cookie value for ``role``, valid for ``ttl_s`` from now."""
        issued = int(self._clock())
        body = f"{_VERSION}.{issued}.{secrets.token_urlsafe(12)}.{role}.{token_id}"
        return f"{body}.{self._mac(body)}"

    def is_valid(self, cookie: str | None) -> bool:
        """True for a cookie this token issued that has not expired."""
        return self.read(cookie) is not None

    def read(self, cookie: str | None) -> SessionInfo | None:
        """Who a cookie this token issued belongs to; None if forged or expired."""
        if not cookie or cookie.count(".") != 5:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        _, issued_s, _, role, token_id = body.split(".")
        if not issued_s.isdigit() or role not in _ROLES or not token_id.isdigit():
            return None
        age_s = self._clock() - int(issued_s)
        if not -_CLOCK_SKEW_S <= age_s < self.ttl_s:
            return None
        return SessionInfo(role, int(token_id))

    def csrf_token(self, cookie: str) -> str:
        """The CSRF token of the session ``cookie``: what the page sends back on changes."""
        return self._mac(f"csrf.{cookie}")

    def is_csrf_valid(self, cookie: str, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token(cookie).encode())

    def _mac(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def set_cookie_header(value: str, max_age_s: float, is_secure: bool) -> str:
    """``Set-Cookie`` for a session: script cannot read it, other sites never send it."""
    secure = "; Secure" if is_secure else ""
    return (
        f"{COOKIE_NAME}={value}; Max-Age={int(max_age_s)}; Path=/; HttpOnly; "
        f"SameSite=Strict{secure}"
    )


def clear_cookie_header(is_secure: bool) -> str:
    """``Set-Cookie`` that removes the session cookie from the browser."""
    return set_cookie_header("", 0, is_secure)
