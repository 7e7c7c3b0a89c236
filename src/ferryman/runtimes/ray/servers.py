"""The Ray actors of the ``ray`` runtime: each owns one Ferryman server process on its node.

A replica actor runs ``ferryman serve`` and a gateway actor ``ferryman gateway``, each as a
child process bound to the node's IP on a free port — the same servers the local runtime
runs, with their own event loop, signal handling (SIGTERM drains) and connection limits,
none of which fit inside a Ray worker (uvicorn installs its signal handlers only in a main
thread, and a worker's asyncio loop belongs to Ray). The child is told to die with its
actor (``PR_SET_PDEATHSIG``), so a killed actor, or a lost node, leaves no orphan server.

Each actor records whose fleet it is: the registry identity of the control plane that
created it (what ``ferryman up`` on another registry is refused by), and a gateway the
fingerprint of the fleet secret it shows replicas (so a control plane with another secret
replaces it rather than route through a gateway every replica refuses).

These classes are plain: :mod:`.fleet` makes them Ray actors (named, detached, placed).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import ray

from ferryman.gateway.routewatch import RouteFeed, RouteWatch
from ferryman.runtimes.local.usage import process_usage

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildServer:
    """One server process on this node: started, watched, drained."""

    def __init__(self, work_dir: Path, env: dict[str, str], port: int | None = None) -> None:
        """``port``: where it listens on the node's address; None: a free port."""
        self.node_ip = str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
        self.node_id = str(ray.get_runtime_context().get_node_id())
        self.port = port or _free_port(self.node_ip)
        self.url = f"http://{self.node_ip}:{self.port}"
        self._dir = work_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")} | env
        self._child: subprocess.Popen[bytes] | None = None
        self._started_s = time.monotonic()
        self._draining_since_s: float | None = None

    def run(self, arguments: list[str]) -> None:
        with (self._dir / "server.log").open("ab") as log:
            self._child = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "ferryman", *arguments],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, before exec
            )  # fmt: skip

    def exit_code(self) -> int | None:
        return None if self._child is None else self._child.poll()

    def drain(self) -> None:
        """SIGTERM once (the server drains, then exits); later calls do nothing."""
        if self._draining_since_s is None:
            self._draining_since_s = time.monotonic()
            if self._child is not None and self._child.poll() is None:
                self._child.send_signal(signal.SIGTERM)

    def status(self) -> dict[str, object]:
        usage = process_usage(self._child.pid) if self._child is not None else None
        draining = self._draining_since_s
        return {
            "url": self.url,
            "node_id": self.node_id,
            "node_ip": self.node_ip,
            "age_s": time.monotonic() - self._started_s,
            "exit_code": self.exit_code(),
            "draining_s": None if draining is None else time.monotonic() - draining,
            "cpu_s": usage.cpu_s if usage else None,
            "rss_bytes": usage.rss_bytes if usage else None,
        }


class ReplicaServer:
    """A replica actor: ``ferryman serve MODEL:VERSION`` on this node; it keeps its spec, so
    a restarted control plane learns what it serves from the actor itself."""

    def __init__(
        self, spec: dict[str, object], data_dir: str, env: dict[str, str], registry: str
    ) -> None:
        name = str(ray.get_runtime_context().get_actor_name())
        self._spec = spec
        self._registry = registry
        self._server = ChildServer(Path(data_dir) / "ray" / name, env)
        arguments = [
            "--data-dir", data_dir, "serve", f"{spec['model']}:{spec['version']}",
            "--host", self._server.node_ip, "--port", str(self._server.port),
        ]  # fmt: skip
        kind = spec.get("kind")
        self._server.run(arguments + (["--variant", str(kind)] if kind else []))

    def status(self) -> dict[str, object]:
        return {**self._server.status(), "spec": self._spec, "registry": self._registry}

    def drain(self) -> None:
        self._server.drain()


class GatewayServer:
    """A gateway actor: ``ferryman gateway`` on this node, fed by a :class:`RouteWatch` that
    long-polls the control plane and writes the node's route file; the file keeps the last
    good table while the control plane is away."""

    def __init__(
        self,
        feed: RouteFeed,
        data_dir: str,
        env: dict[str, str],
        identity: dict[str, str],
        port: int,
    ) -> None:
        """``identity``: ``registry`` (the control plane's registry) and ``secret`` (the
        fingerprint of the fleet secret in ``env``); ``port``: the gateway port, the same on
        every node, so that clients (or a load balancer) reach any node's gateway by it."""
        name = str(ray.get_runtime_context().get_actor_name()).replace(":", "-")
        self._identity = identity
        self._server = ChildServer(Path(data_dir) / "ray" / name, env, port)
        self._routes = Path(data_dir) / "ray" / name / "routes.json"
        self._watch = RouteWatch(feed, self._routes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch.run, args=(self._stop,), daemon=True)
        self._thread.start()
        self._data_dir = data_dir
        self._start()

    def _start(self) -> None:
        self._server.run([
            "--data-dir", self._data_dir, "gateway", "--host", self._server.node_ip,
            "--port", str(self._server.port), "--routes-file", str(self._routes),
        ])  # fmt: skip

    def ensure_running(self, identity: dict[str, str]) -> str:
        """Its URL; a gateway process that exited is started again on the same port.
        '' if it belongs to another ``identity`` (registry, secret): it is to be replaced."""
        if identity != self._identity:
            return ""
        if self._server.exit_code() is not None:
            self._start()
        return self._server.url

    def url(self) -> str:
        return self._server.url

    def table(self) -> str | None:
        """The route table this gateway holds (JSON), or None before the first one."""
        with contextlib.suppress(OSError):
            return self._routes.read_text()
        return None

    def drain(self) -> None:
        self._stop.set()
        self._server.drain()

    def status(self) -> dict[str, object]:
        return {**self._server.status(), "registry": self._identity.get("registry", "")}


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
