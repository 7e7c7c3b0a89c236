"""A gateway's watch of the control plane's route table (``GET /api/v1/routes``, long poll).

Each new table is validated, then written to the gateway's route file atomically (the
gateway re-reads the file when it changes); an error, a refusal or an invalid table leaves
the file — the last good table — as it is, and the watch asks again a moment later.

The watch authenticates with the *route token*, an HMAC of the control token: it can read
the route table and nothing else, and the control token cannot be recovered from it, so a
gateway on another node (whose arguments Ray keeps) never holds the control token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import ValidationError

from ferryman.gateway.routes import RouteTable

logger = logging.getLogger(__name__)

WAIT_S = 20.0
RETRY_S = 1.0
_ROUTE_TOKEN_PURPOSE = b"ferryman route table watch v1"


def route_token(control_token: str) -> str:
    """The token that reads the route table, derived from the control token."""
    return hmac.new(control_token.encode(), _ROUTE_TOKEN_PURPOSE, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class RouteFeed:
    """Where a gateway reads the route table: the control plane's URL, the route token (None
    when the control plane has auth off), and the backend hosts it accepts besides loopback
    (``gateway.backend_hosts``)."""

    control_url: str
    token: str | None
    backend_hosts: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never the token
        return f"RouteFeed({self.control_url!r})"


class RouteWatch:
    def __init__(self, feed: RouteFeed, path: Path) -> None:
        self._url = f"{feed.control_url}/api/v1/routes"
        self._headers = {"authorization": f"Bearer {feed.token}"} if feed.token else {}
        self._hosts = feed.backend_hosts
        self._path = path
        self.generation = -1

    def run(self, stop: threading.Event) -> None:
        """Ask, write, repeat until ``stop`` is set."""
        with httpx.Client(timeout=WAIT_S + 5) as http:
            while not stop.is_set():
                if not self.poll(http):
                    stop.wait(RETRY_S)

    def poll(self, http: httpx.Client) -> bool:
        """One long poll; False when the control plane could not be read (retry later)."""
        params = {"after_generation": self.generation, "wait_s": WAIT_S}
        try:
            answer = http.get(self._url, params=params, headers=self._headers)
        except httpx.HTTPError as exc:
            logger.warning("route table watch: %s; keeping the last table", type(exc).__name__)
            return False
        if answer.status_code == 304:
            return True
        if answer.status_code != 200:
            logger.warning("route table watch: HTTP %d; keeping the last table", answer.status_code)
            return False
        try:
            table = RouteTable.from_json(answer.content, self._hosts)
        except ValidationError:
            logger.warning("route table watch: an invalid table; keeping the last one")
            return False
        self._write(answer.content)
        self.generation = table.generation
        return True

    def _write(self, content: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_suffix(".tmp")
        temporary.write_bytes(content)
        os.replace(temporary, self._path)
