"""A replica of one serving configuration, as a child process, and what it costs in /proc.

Measuring needs a real replica (its own HTTP server, batcher and ONNX Runtime threads), so
the sweep starts ``ferryman serve`` on a free loopback port with the configuration in its
environment. The process is this one's child, so reading its /proc files is reading our
own; it runs in a session of its own, so Ctrl-C stops the sweep, which then stops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from ferryman.config import Settings
from ferryman.errors import Unavailable
from ferryman.registry import ServingConfig

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Usage:
    """CPU and memory of a process over an interval."""

    cpu_pct: float | None
    """CPU time over wall time, in percent of one core."""
    rss_bytes: float | None


class ProcessMeter:
    """CPU time and resident memory of one process, from /proc (None where there is none)."""

    def __init__(self, pid: int) -> None:
        self._stat = Path(f"/proc/{pid}/stat")
        self._status = Path(f"/proc/{pid}/status")
        self._ticks_per_s = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._mark = (time.monotonic(), self._cpu_s())

    def _cpu_s(self) -> float | None:
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
        return (int(fields[11]) + int(fields[12])) / self._ticks_per_s

    def _rss_bytes(self) -> float | None:
        try:
            for line in self._status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def restart(self) -> None:
        """Start a new interval now."""
        self._mark = (time.monotonic(), self._cpu_s())

    def usage(self) -> Usage:
        """Usage since the last :meth:`restart` (or since the meter was made)."""
        then_s, cpu_then_s = self._mark
        cpu_now_s = self._cpu_s()
        wall_s = time.monotonic() - then_s
        if cpu_now_s is None or cpu_then_s is None or wall_s <= 0:
            return Usage(None, self._rss_bytes())
        return Usage(100.0 * (cpu_now_s - cpu_then_s) / wall_s, self._rss_bytes())


@dataclass(frozen=True)
class RunningReplica:
    base_url: str
    meter: ProcessMeter


def replica_command(
    settings: Settings, model: str, version: int, config: ServingConfig, port: int
) -> list[str]:
    """``ferryman serve MODEL:N --variant KIND --port P`` on this data dir."""
    return [
        sys.executable,
        "-m",
        "ferryman",
        "--data-dir",
        str(settings.data_dir),
        "serve",
        f"{model}:{version}",
        "--variant",
        config.variant,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]


def replica_environment(settings: Settings, config: ServingConfig) -> dict[str, str]:
    """This process's environment with the configuration (and the registry URL) set."""
    env = dict(os.environ)
    env.update(
        {
            "FERRYMAN_SERVING__MAX_BATCH_SIZE": str(config.max_batch_size),
            "FERRYMAN_SERVING__MAX_DELAY_MS": str(config.max_delay_ms),
            "FERRYMAN_SERVING__INTRA_OP_THREADS": str(config.intra_op_threads),
            # One call at a time: a configuration's threads are the cores it takes, as the
            # planner packs replicas onto instances (replicas now run a call per core).
            "FERRYMAN_SERVING__MODEL_CALLS": "1",
        }
    )
    if settings.database_url:
        env["FERRYMAN_DATABASE_URL"] = settings.database_url
    return env


@asynccontextmanager
async def running_replica(
    settings: Settings, model: str, version: int, config: ServingConfig
) -> AsyncIterator[RunningReplica]:
    """A ready replica of ``config``; stopped (SIGTERM, then SIGKILL) on the way out."""
    port = _free_port()
    # A file, not a pipe: a replica that logs much would block on a full pipe.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, a validated model name
        replica_command(settings, model, version, config, port),
        env=replica_environment(settings, config),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(base_url, process, config, stderr)
        yield RunningReplica(base_url, ProcessMeter(process.pid))
    finally:
        await _stop(process)
        stderr.close()


async def _wait_ready(
    base_url: str, process: subprocess.Popen[bytes], config: ServingConfig, stderr: IO[bytes]
) -> None:
    """Poll readiness: another process's start is not an event this one can await."""
    deadline_s = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url, timeout=1.0) as client:
        while time.monotonic() < deadline_s:
            if process.poll() is not None:
                stderr.seek(0)
                said = stderr.read().decode(errors="replace")
                last = said.strip().splitlines()[-1:] or ["(no output)"]
                raise Unavailable(
                    f"the replica for {config.describe()} exited with {process.returncode}: "
                    f"{last[0]}"
                )
            try:
                if (await client.get("/v2/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise Unavailable(
        f"the replica for {config.describe()} was not ready within {READY_TIMEOUT_S:g} s"
    )


async def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline_s:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
