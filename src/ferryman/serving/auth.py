"""Who may call a replica: the holder of its token, on every route but liveness.

Under ``ferryman up`` the token is the fleet's secret, which only the gateway and the control
plane hold, so nothing else on the host reaches a replica's inference, payload log or
metrics around the gateway. A replica served on its own has no token unless given one
(``ferryman serve --token``). The check is one ``hmac.compare_digest`` of the raw
``authorization`` header against ``Bearer <token>`` (the scheme written exactly so).
"""

from __future__ import annotations

import hmac

from ferryman.config import ServingSettings
from ferryman.errors import Unauthenticated

LIVENESS_PATH = "/v2/health/live"
LIVENESS_RPC = "ServerLive"
CHALLENGE = (b"www-authenticate", b'Bearer realm="ferryman"')
REFUSED = Unauthenticated(
    "this replica answers its gateway and control plane only; send 'Authorization: Bearer "
    "TOKEN' (the fleet secret of `ferryman up`, or the --token given to `ferryman serve`)"
)


def expected_credentials(settings: ServingSettings) -> bytes | None:
    """The whole ``authorization`` value a request must carry; None: no auth."""
    if settings.token is None:
        return None
    return b"Bearer " + settings.token.get_secret_value().encode()


def is_authorized(presented: bytes | None, expected: bytes) -> bool:
    return presented is not None and hmac.compare_digest(presented, expected)
