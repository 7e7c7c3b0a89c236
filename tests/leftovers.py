"""Every test stops what it starts: a session-level check, loaded by tests/conftest.py.

At the start of a session the plugin puts a mark (a fresh UUID) in the environment; every
process the suite starts inherits it, also processes started in a session of their own
that outlive the process that started them (a replica, a gateway), since Ferryman passes
its children every variable that is not a ``FERRYMAN_`` setting. At the end, any process
that still carries the mark, and any socket the test process itself still listens on that
it did not listen on at the start, is a leftover: the session fails, naming each one (pid,
command line, ports), and the leftover processes are killed so the machine stays clean.

Under pytest-xdist the controller draws the mark and the workers inherit it; each worker
reports its own leftover listening sockets and pid through ``workeroutput``, and the
controller checks processes once all workers are done. Linux only: it reads /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MARK = "PYTEST_FERRYMAN_SESSION"
"""Not a ``FERRYMAN_`` name: Ferryman hands those to its children only selectively."""
GRACE_S = 10.0
"""How long a process stopped at the very end of the last test may take to exit."""


@dataclass(frozen=True)
class Leftover:
    pid: int
    command: str
    ports: tuple[int, ...]

    def describe(self) -> str:
        ports = ", ".join(str(port) for port in self.ports) or "no port"
        return f"pid {self.pid} ({ports}): {self.command[:200]}"


class LeftoverCheck:
    """The plugin: one per pytest process (controller, worker, or a run without xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._is_worker = hasattr(config, "workerinput")
        if not self._is_worker:
            os.environ[MARK] = uuid.uuid4().hex
        self._mark = os.environ[MARK]
        self._listening_before = listening_ports(os.getpid())
        self._worker_reports: list[dict[str, Any]] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", None)
        if output and "leftover_pid" in output:
            self._worker_reports.append(output)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        own = sorted(listening_ports(os.getpid()) - self._listening_before)
        if self._is_worker:
            output = self._config.workeroutput  # type: ignore[attr-defined]
            output["leftover_pid"] = os.getpid()
            output["leftover_ports"] = own
            return
        problems = [f"pytest itself (pid {os.getpid()}) still listens on {own}"] if own else []
        for report in self._worker_reports:
            if report["leftover_ports"]:
                problems.append(
                    f"xdist worker pid {report['leftover_pid']} still listens on "
                    f"{report['leftover_ports']}"
                )
        spared = {os.getpid(), *(report["leftover_pid"] for report in self._worker_reports)}
        for leftover in self._wait_for_marked(spared):
            problems.append(f"a process outlived the suite, killed now: {leftover.describe()}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
        if problems:
            reporter = self._config.pluginmanager.get_plugin("terminalreporter")
            for line in ["LEFTOVERS: a test did not stop what it started", *problems]:
                if reporter is not None:
                    reporter.write_line(line, red=True, bold=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _wait_for_marked(self, spared: set[int]) -> list[Leftover]:
        deadline = time.monotonic() + GRACE_S
        while True:
            found = [p for p in marked_processes(self._mark) if p.pid not in spared]
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)  # other processes' exits are no event this one can await


def marked_processes(mark: str) -> list[Leftover]:
    """Every live process whose environment holds ``MARK=mark``."""
    entry = f"{MARK}={mark}".encode()
    found = []
    for folder in Path("/proc").iterdir():
        if not folder.name.isdigit():
            continue
        try:
            if entry not in (folder / "environ").read_bytes().split(b"\0"):
                continue
            command = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # gone, a zombie, or another user's
            continue
        if command:  # a zombie has no command line and holds nothing
            pid = int(folder.name)
            found.append(Leftover(pid, command, tuple(sorted(listening_ports(pid)))))
    return found


def listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` listens on, from its socket descriptors and /proc/net/tcp{,6}."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    if not inodes:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LeftoverCheck(config), "ferryman-leftovers")
