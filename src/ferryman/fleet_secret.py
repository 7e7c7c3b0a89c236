"""The fleet's secret: what the gateway and the control plane show replicas, and nobody else.

Generated on the first ``ferryman up`` of a data dir (256 random bits, mode 0600 in
``fleet-secret``), handed to replicas (``FERRYMAN_SERVING__TOKEN``) and the gateway
(``FERRYMAN_GATEWAY__REPLICA_TOKEN``) through their environment, never their arguments,
which every user can read. Replicas refuse any request without it but liveness
(:mod:`ferryman.serving.auth`), so the host's other users reach inference only through the
gateway, and a replica's payload log and metrics only through the control plane.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FLEET_SECRET_FILE = "fleet-secret"  # noqa: S105 - a file name, not a secret


def load_or_create_fleet_secret(data_dir: Path) -> str:
    """The data dir's fleet secret; created (mode 0600) when there is none."""
    path = data_dir / FLEET_SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def replica_headers(secret: str) -> dict[str, str]:
    """The headers of every request the control plane sends a replica."""
    return {"authorization": f"Bearer {secret}"}
