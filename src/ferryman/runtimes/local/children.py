"""What every child process of the local runtime needs: its environment, a port, an identity."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ferryman.config import Settings


def child_environment(settings: Settings, keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for a Ferryman child process: this one's, less every Ferryman setting
    but those starting with ``keep`` (the parent passes what a child needs, no secret more),
    plus the log settings in force."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FERRYMAN_") or key.startswith(keep)
    }
    env["FERRYMAN_LOG_LEVEL"] = settings.log_level
    env["FERRYMAN_LOG_FORMAT"] = settings.log_format
    return env


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat); None if no process.

    Together with the pid it names one process for good: a recycled pid has another start.
    Zombies count as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]
