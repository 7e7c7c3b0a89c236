"""The session-level leftover check (tests/leftovers.py) fails a run that leaves a process
or a listening socket behind, names it, and kills the process; with and without xdist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.leftovers import marked_processes

pytest_plugins = ["pytester"]

LEAKY = """
import socket, subprocess, sys

HELD = []

def test_leaves_a_server_process_behind():
    code = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "time.sleep(120)")
    subprocess.Popen([sys.executable, "-c", code], start_new_session=True)

def test_leaves_a_socket_listening_in_this_process():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    HELD.append(sock)
"""

TIDY = """
import subprocess, sys

def test_stops_what_it_starts():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    child.terminate()
    child.wait()
"""


@pytest.fixture
def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_leftover_process_and_socket_fail_the_session_by_name(
    run_inner: pytest.Pytester, workers: list[str]
) -> None:
    run_inner.makepyfile(test_leaky=LEAKY)

    result = run_inner.runpytest_subprocess("-p", "tests.leftovers", "-p", "no:cacheprovider",
                                            *workers, timeout=120)  # fmt: skip

    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "2 passed" in output  # every test passed: only the check fails the run
    assert "LEFTOVERS: a test did not stop what it started" in output
    killed = re.search(r"killed now: pid (\d+) \((\d+)\): .*time.sleep\(120\)", output)
    assert killed is not None, output
    assert (
        not os.path.exists(f"/proc/{killed.group(1)}/cmdline")
        or not Path(f"/proc/{killed.group(1)}/cmdline").read_bytes()
    )  # killed (gone, or a zombie until its new parent reaps it)
    assert re.search(r"still listens on \[\d+\]", output), output


def test_a_tidy_session_passes(run_inner: pytest.Pytester) -> None:
    run_inner.makepyfile(test_tidy=TIDY)
    result = run_inner.runpytest_subprocess("-p", "tests.leftovers", timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "LEFTOVERS" not in result.stdout.str()


def test_the_suite_runs_marked() -> None:
    """This very session carries the mark, so what it starts can be found at its end."""
    assert os.environ["PYTEST_FERRYMAN_SESSION"]
    assert all(leftover.pid != os.getpid() for leftover in marked_processes("no-such-mark"))
