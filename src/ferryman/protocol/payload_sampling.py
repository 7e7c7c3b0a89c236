"""Which requests a payload log keeps when it samples: one rule the replica and the control
plane share.

A replica may declare a payload sample rate below 1 (to spend less on its log at very high
request rates). Whether a request is kept is a pure function of its request id and that
rate, so whoever holds the id — the control plane judging a label, a client — can tell
whether its request was logged, and the quality figures count labels for unlogged requests
as sampled out rather than as lost.

>>> is_logged("anything", 1.0), is_logged("anything", 0.0)
(True, False)
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def is_logged(request_id: str, rate: float) -> bool:
    """Whether a payload log sampling at ``rate`` (0..1) keeps the request ``request_id``."""
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _SCALE
