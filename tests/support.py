"""Helpers many tests share: a clock that tests step, and a free loopback port.

``tests/conftest.py`` offers both as fixtures (``clock``, ``free_port``); modules that need
them outside a test function (stack harnesses, fixtures of their own) import them here.
"""

from __future__ import annotations

import socket


class SteppedClock:
    """A clock that moves only when a test moves it: ``clock.now_s += 5``."""

    def __init__(self, now_s: float = 0.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def free_port() -> int:
    """A loopback port nothing listens on now (never a default port of Ferryman's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
