"""CPU time and resident memory of a process, read from Linux's /proc.

The monitor reads each local replica's usage once per sample; CPU time only grows, so the
CPU share over an interval is the difference of two readings (see ``sampling.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    """User plus system CPU time since the process started, in seconds."""
    rss_bytes: float
    """Resident set size now, in bytes."""


def process_usage(pid: int, proc: Path = Path("/proc")) -> Usage | None:
    """The usage of ``pid``, or None when it is gone (or this is not Linux)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the command (which may hold spaces and parentheses): state is field 3,
    # utime 14, stime 15 (clock ticks), rss 24 (pages).
    fields = stat.rsplit(")", 1)[1].split()
    try:
        ticks = int(fields[11]) + int(fields[12])
        pages = int(fields[21])
    except (IndexError, ValueError):
        return None
    return Usage(
        cpu_s=ticks / os.sysconf("SC_CLK_TCK"),
        rss_bytes=float(pages * os.sysconf("SC_PAGE_SIZE")),
    )
