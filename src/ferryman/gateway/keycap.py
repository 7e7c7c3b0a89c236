"""How much one sticky key may weigh in the traffic rollouts judge.

A client chooses its sticky key (a header), the hash that places a key is public and the
answer names the variant, so one client can send all its requests to the candidate. Counted
like any other, a flood of good requests from one key diluted a bad candidate's error rate
until it was promoted, and a flood of refused ones rolled a good one back. So each key adds
at most ``per_key`` requests per ``window_s`` to the judged traffic; the rest are answered
as usual and counted apart (``ferryman_gateway_capped_requests_total``).

Memory is bounded: the counts of the current window only, keyed by the key's hash (a
Python ``hash``, salted per process, so nobody can craft collisions), at most ``max_keys``
of them (65,536 hold 4.7 MiB). When the table is full a key it does not hold is not judged
in that window: a client who mints keys to fill it stalls the judged traffic (the gates
hold: no release), never lets an uncounted key through.
"""

from __future__ import annotations

from collections.abc import Callable


class StickyKeyCap:
    """Admits a sticky key's requests to the judged traffic, ``per_key`` per window."""

    def __init__(
        self, per_key: int, window_s: float, max_keys: int, clock: Callable[[], float]
    ) -> None:
        self.per_key = per_key
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._counts: dict[int, int] = {}
        self._window_ends = 0.0

    def admits(self, endpoint: str, key: bytes) -> bool:
        """Count one request of ``key`` on ``endpoint``; False once the key has its share of
        this window (or is new to a full table)."""
        now = self._clock()
        if now >= self._window_ends:
            self._counts.clear()
            self._window_ends = now + self.window_s
        counts = self._counts
        slot = hash((endpoint, key))
        seen = counts.get(slot, 0)
        if seen >= self.per_key or (not seen and len(counts) >= self.max_keys):
            return False
        counts[slot] = seen + 1
        return True
