"""Passive health: a replica that refuses a connection is skipped for a short while.

Marks are cleared by a new route-table generation (the control plane has looked again)
or when ``recheck_s`` has passed on the injected monotonic clock, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Iterable

from ferryman.types import Clock


class BackendHealth:
    """Which backends are marked down, and until when."""

    def __init__(self, recheck_s: float, clock: Clock) -> None:
        self._recheck_s = recheck_s
        self._clock = clock
        self._down_until: dict[str, float] = {}

    def mark_down(self, backend: str) -> None:
        self._down_until[backend] = self._clock() + self._recheck_s

    def is_up(self, backend: str) -> bool:
        if not self._down_until:  # the usual case: nothing is marked down
            return True
        until = self._down_until.get(backend)
        if until is None:
            return True
        if self._clock() >= until:
            del self._down_until[backend]
            return True
        return False

    def live(self, backends: Iterable[str]) -> list[str]:
        """The backends not marked down, in their given order."""
        if not self._down_until:
            return list(backends)
        return [backend for backend in backends if self.is_up(backend)]

    def reset(self) -> None:
        """Forget every mark (a new route table generation arrived)."""
        self._down_until.clear()
