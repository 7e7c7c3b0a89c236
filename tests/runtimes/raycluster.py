"""A real two-node Ray cluster on this machine: a head on 127.0.0.2, a worker on 127.0.0.3.

Each node is ``ray start … --block`` as a child of the test session, in a session of its
own, on free ports and in a temporary directory of its own; it is stopped by its pid
(SIGTERM: ``ray start --block`` stops what it started), and its process group is killed if
it lingers. Never ``ray stop``: it kills every Ray process of the machine. Ray's health
checks are shortened so that a lost node is declared dead in about two seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray

from tests.support import free_port

HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"
FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "4",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@dataclass
class RayCluster:
    address: str
    """The GCS's HOST:PORT, which a driver on a node of the cluster joins."""
    client_address: str
    """``ray://HEAD:PORT``: the head's Ray Client server, which a process that is no node of
    the cluster joins (as the control plane of the KubeRay export does)."""
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    temp_dir: Path

    def node_ip(self, node_id: str) -> str:
        for node in ray.nodes():  # type: ignore[no-untyped-call]  # ray leaves it unannotated
            if node["NodeID"] == node_id:
                return str(node["NodeManagerAddress"])
        raise AssertionError(f"no node {node_id}")

    def alive_ips(self) -> set[str]:
        return {str(n["NodeManagerAddress"]) for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]

    def worker_raylet_pid(self) -> int:
        """The raylet that ``ray start`` started for the worker node."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
                if int(fields[1]) == self.worker.pid and b"raylet/raylet" in command:
                    return int(entry.name)
        raise AssertionError("the worker node's raylet is not running")


def _node(arguments: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    ports = [
        "--num-cpus", "1", "--block", "--disable-usage-stats",
        "--object-manager-port", str(free_port()), "--node-manager-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--min-worker-port", "0", "--max-worker-port", "0",
        "--object-store-memory", str(80 * 1024 * 1024),
    ]  # fmt: skip
    ray_cli = str(Path(sys.executable).with_name("ray"))
    with log.open("ab") as sink:
        return subprocess.Popen(
            [ray_cli, "start", *arguments, *ports],
            stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # its group: raylet, GCS, workers
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def running_cluster(extra_env: dict[str, str]) -> Iterator[RayCluster]:
    temp_dir = Path(tempfile.mkdtemp(prefix="fm-ray-"))  # short: Ray's socket paths
    env = {**os.environ, **FAST_HEALTH_CHECKS, **extra_env}
    gcs_port, client_port = free_port(), free_port()
    head = _node(
        ["--head", "--node-ip-address", HEAD_IP, "--port", str(gcs_port),
         "--temp-dir", str(temp_dir), "--include-dashboard", "false",
         "--ray-client-server-port", str(client_port), "--dashboard-port", str(free_port())],
        temp_dir / "head.log", env,
    )  # fmt: skip
    address = f"{HEAD_IP}:{gcs_port}"
    worker = None
    try:
        worker = _node(["--address", address, "--node-ip-address", WORKER_IP],
                       temp_dir / "worker.log", env)  # fmt: skip
        cluster = RayCluster(address, f"ray://{HEAD_IP}:{client_port}", head, worker, temp_dir)
        _wait_for_nodes(cluster)
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if worker is not None:
            _stop(worker)
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_nodes(cluster: RayCluster, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in (cluster.head, cluster.worker):
            if process.poll() is not None:
                log = (cluster.temp_dir / "head.log").read_text()[-2000:]
                raise AssertionError(f"a Ray node exited: {log}")
        with contextlib.suppress(ConnectionError, RuntimeError):
            if not ray.is_initialized():
                ray.init(address=cluster.address, _node_ip_address=HEAD_IP,
                         log_to_driver=False, configure_logging=False)  # fmt: skip
            if cluster.alive_ips() == {HEAD_IP, WORKER_IP}:
                return
        time.sleep(0.5)
    raise AssertionError(f"the Ray cluster did not come up in {timeout_s} s")
