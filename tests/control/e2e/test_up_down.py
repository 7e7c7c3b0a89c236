"""``ferryman up`` holds its data dir and checks its ports first; ``ferryman down`` asks a
running control plane to stop its fleet instead of racing its loop. Real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from ferryman.runtimes.local.children import process_start
from tests.control.e2e.harness import Stack, wait_for
from tests.support import free_port

FERRYMAN = str(Path(sys.executable).with_name("ferryman"))


def _run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FERRYMAN, *args], capture_output=True, text=True, env=stack.env, check=False, timeout=60
    )


def test_a_second_up_on_the_same_data_dir_refuses_in_one_line(stack: Stack) -> None:
    second = _run(stack, "up", "--port", str(free_port()), "--gateway-port", str(free_port()))

    assert second.returncode == 1
    assert second.stdout == ""  # no banner
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert "a control plane already runs on data dir" in second.stderr
    assert f"http://127.0.0.1:{stack.api_port}" in second.stderr
    assert stack.process is not None
    assert stack.process.poll() is None


def test_up_on_a_taken_port_exits_1_with_one_line_before_its_banner(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = (("--port", "the control plane's API"), ("--gateway-port", "the gateway's"))
        for flag, says in cases:
            other = "--gateway-port" if flag == "--port" else "--port"
            done = _run(stack, "up", flag, port, other, str(free_port()))
            assert done.returncode == 1, done.stderr
            assert done.stdout == ""
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert f"port {port} ({says}" in done.stderr
            assert flag in done.stderr  # the fix names the option
        again = _run(stack, "up", "--port", port, "--gateway-port", str(free_port()))
        assert again.returncode == 1
        assert "already runs" not in again.stderr


def test_down_stops_the_fleet_through_the_running_control_plane(stack: Stack) -> None:
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 90, "two ready replicas")
    replicas = list(stack.replica_pids().values())
    gateway = int(json.loads((stack.data_dir / "gateway.json").read_text())["pid"])

    started = time.monotonic()
    done = _run(stack, "down")
    took_s = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert "Stopped 2 replicas and the gateway, and the control plane" in done.stdout
    assert stack.process is not None
    assert stack.process.wait(timeout=10) == 0
    time.sleep(1.0)  # a loop still running would have started new replicas by now
    assert not [pid for pid in [*replicas, gateway] if process_start(pid) is not None]
    assert list((stack.data_dir / "replicas").glob("*.json")) == []
    assert not (stack.data_dir / "gateway.json").exists()
    print(f"ferryman down with a control plane running took {took_s:.1f} s")
    assert took_s < 20, took_s  # it took 31 s while it raced the loop
    events = stack.ferryman("events", "--limit", "5")
    assert "fleet.stopped" in events
