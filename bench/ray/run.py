"""Ray runtime benchmark: the gateway of a fleet on Ray vs the gateway of a local fleet.

One run, the same replicas (``ferryman serve`` of a digits-sized ONNX MLP, the fleet secret
on both), one load tool (wrk, keep-alive, concurrency 64 by default): ``ferryman up`` on the
local runtime and ``ferryman up --runtime ray`` on a one-node Ray cluster that this script
starts on 127.0.0.2 (stopped by its pid, never ``ray stop``), each with one replica of
``digits``. Rounds interleave the two gateways and the median round is shown, so a burst of
other load on the machine hits both alike; then both gateways are loaded at once (half the
concurrency each), which a busy machine disturbs far less. Targets: throughput Ray/local
>= 0.9, p99 Ray/local <= 1.2.

Replica start: each fleet is scaled 1 -> 2 a few times; on Ray from the actor placed (its
``__init__`` ran on its node) to ready, locally from the process started to ready, both as
the replica's own age when the control plane first routes to it.

    .venv/bin/python bench/ray/run.py [--duration-s 10] [--concurrency 64] [--rounds 3]

Needs wrk (``apt-get install -y wrk``) and the ``ray`` extra. A one-node cluster keeps the
comparison to what the runtime changes (a gateway and replicas placed by Ray, the route
table over the API instead of a file); several nodes need PostgreSQL and S3 (the tests run
that, ``tests/runtimes/test_ray_runtime.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import ray
from rich.console import Console
from rich.table import Table

HEAD_IP = "127.0.0.2"
_spec = importlib.util.spec_from_file_location(
    "gateway_bench", Path(__file__).resolve().parents[1] / "gateway" / "run.py"
)
if _spec is None or _spec.loader is None:
    sys.exit("bench/gateway/run.py is missing")
gateway_bench = importlib.util.module_from_spec(_spec)
sys.modules["gateway_bench"] = gateway_bench  # its dataclasses look their module up
_spec.loader.exec_module(gateway_bench)
Result = gateway_bench.Result


@dataclass
class Fleet:
    """One ``ferryman up`` and its data dir."""

    name: str
    data_dir: Path
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    api_port: int = field(default_factory=lambda: int(gateway_bench.free_port()))
    process: subprocess.Popen[bytes] | None = None
    gateway: str = ""

    def ferryman(self, *args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("ferryman")), *args],
            env=self.env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"{self.name}: ferryman {' '.join(args)} failed: {done.stderr[-800:]}")
        return done.stdout

    def headers(self) -> dict[str, str]:
        token = (self.data_dir / "control-token").read_text().strip()
        return {"authorization": f"Bearer {token}"}

    def backends(self) -> list[str]:
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{self.api_port}/api/v1/routes",
                params={"wait_s": 0}, headers=self.headers(), timeout=5,
            )  # fmt: skip
            table = answer.json()
        except (httpx.HTTPError, OSError, ValueError):
            return []
        endpoint = table.get("endpoints", {}).get("digits")
        if not endpoint:
            return []
        return [url for variant in endpoint["variants"] for url in variant["backends"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; median shown.")
    parser.add_argument("--starts", type=int, default=3, help="Replica starts per runtime.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; install it with: apt-get install -y wrk")
    console = Console()
    with tempfile.TemporaryDirectory(prefix="fm-bray-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        address = stack.enter_context(head_node(work / "ray"))
        ray.init(address=address, _node_ip_address=HEAD_IP, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
        model = work / "digits.onnx"
        model.write_bytes(gateway_bench.digits_mlp())
        fleets = [
            stack.enter_context(running_fleet("local", work, model, [])),
            stack.enter_context(
                running_fleet("ray", work, model, ["--runtime", "ray", "--ray-address", address])
            ),
        ]
        with console.status("replica starts: scaling 1 -> 2 -> 1 on each runtime"):
            starts = {fleet.name: replica_starts(fleet, args.starts) for fleet in fleets}
        for fleet in fleets:
            gateway_bench.wait_ready(fleet.gateway)
            gateway_bench.load_path(fleet.gateway, 1, 2)  # warm the pools and the model
        rounds: dict[str, list[Result]] = {fleet.name: [] for fleet in fleets}
        with console.status("interleaved rounds"):
            for _ in range(args.rounds):
                for fleet in fleets:
                    run = gateway_bench.load_path(
                        fleet.gateway, args.duration_s, args.concurrency, fleet.name
                    )
                    rounds[fleet.name].append(run)
        with console.status("both gateways at once"):
            together = both_at_once(fleets, args)
    show(console, rounds, together, starts, args)


def show(
    console: Console,
    rounds: dict[str, list[Result]],
    together: list[tuple[Result, Result]],
    starts: dict[str, list[float]],
    args: argparse.Namespace,
) -> None:
    local, on_ray = (gateway_bench.median(rounds[name]) for name in ("local", "ray"))
    table = Table(
        title=f"gateway on Ray vs local, digits, concurrency {args.concurrency}, median of "
        f"{args.rounds} interleaved rounds of {args.duration_s} s, {os.cpu_count()} cores"
    )
    for column in ("runtime", "req/s", "p50 ms", "p99 ms", "errors", "replica start s"):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    for result in (local, on_ray):
        times = sorted(starts[result.path])
        table.add_row(
            result.path, f"{result.requests_per_s:,.0f}", f"{result.p50_ms:.2f}",
            f"{result.p99_ms:.2f}", str(result.errors),
            f"{times[len(times) // 2]:.2f} ({', '.join(f'{t:.2f}' for t in times)})",
        )  # fmt: skip
    console.print(table)
    rate = on_ray.requests_per_s / local.requests_per_s
    console.print(
        f"Ray/local, interleaved medians: throughput {rate:.3f} (target >= 0.9), "
        f"p99 {on_ray.p99_ms / local.p99_ms:.3f} (target <= 1.2)"
    )
    rates = sorted(r.requests_per_s / l.requests_per_s for l, r in together)  # noqa: E741
    p99s = sorted(r.p99_ms / l.p99_ms for l, r in together)  # noqa: E741
    middle = len(together) // 2
    console.print(
        f"Ray/local, both at once (c{args.concurrency // 2} each), median of {len(together)}: "
        f"throughput {rates[middle]:.3f} ({rates[0]:.3f}-{rates[-1]:.3f}), "
        f"p99 {p99s[middle]:.3f} ({p99s[0]:.3f}-{p99s[-1]:.3f})"
    )
    console.print(
        "replica start: Ray from the actor placed, local from the process started, to the "
        "first route to it (median, then each start)"
    )


def both_at_once(fleets: list[Fleet], args: argparse.Namespace) -> list[tuple[Result, Result]]:
    half = max(args.concurrency // 2, 1)
    pairs = []
    for _ in range(args.rounds):
        with ThreadPoolExecutor(2) as pool:
            runs = [
                pool.submit(gateway_bench.load_path, f.gateway, args.duration_s, half, f.name)
                for f in fleets
            ]
            pairs.append((runs[0].result(), runs[1].result()))
    return pairs


def replica_starts(fleet: Fleet, count: int) -> list[float]:
    """Seconds from a new replica's start (actor placed, or process started) to its route."""
    found = []
    for _ in range(count):
        before = set(fleet.backends())
        fleet.ferryman("scale", "digits", "--replicas", "2")
        new = wait_for(partial(_new_backends, fleet, before), 120, f"{fleet.name}: a replica")
        found.append(replica_age_s(fleet, next(iter(new))))
        fleet.ferryman("scale", "digits", "--replicas", "1")
        wait_for(lambda: len(fleet.backends()) == 1, 60, f"{fleet.name}: back to one replica")
        time.sleep(3)  # the drained replica gone
    return found


def _new_backends(fleet: Fleet, before: set[str]) -> set[str]:
    return set(fleet.backends()) - before


def replica_age_s(fleet: Fleet, url: str) -> float:
    """How long ago the replica at ``url`` was started (placed, on Ray)."""
    if fleet.name == "local":
        port = int(httpx.URL(url).port or 0)
        for path in (fleet.data_dir / "replicas").glob("*.json"):
            record = json.loads(path.read_text())
            if record["port"] == port:  # started_at_s: the control plane's monotonic clock
                return time.monotonic() - float(record["started_at_s"])
        sys.exit(f"no state file for {url}")
    namespace = fleet.env["FERRYMAN_RAY__NAMESPACE"]
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != namespace or entry["name"].startswith("gateway:"):
            continue
        status = ray.get(ray.get_actor(entry["name"], namespace=namespace).status.remote())
        if status["url"] == url:
            return float(status["age_s"])
    sys.exit(f"no actor serves {url}")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    sys.exit(f"{what}: not within {timeout_s} s")


@contextmanager
def running_fleet(name: str, work: Path, model: Path, args: list[str]) -> Iterator[Fleet]:
    data_dir = work / name / "data"
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    gateway_port = gateway_bench.free_port()
    env |= {
        "FERRYMAN_DATA_DIR": str(data_dir),
        "FERRYMAN_STATE_DIR": str(work / name / "state"),
        "FERRYMAN_GATEWAY__PORT": str(gateway_port),
        "FERRYMAN_CONTROL__RECONCILE_INTERVAL_S": "0.2",
        "FERRYMAN_SERVING__DRAIN_TIMEOUT_S": "2",
        "FERRYMAN_RAY__NAMESPACE": f"bench{os.getpid()}",
        "FERRYMAN_RAY__NODE_IP_ADDRESS": HEAD_IP,
        "FERRYMAN_RAY__REPLICA_NUM_CPUS": "0.1",
    }
    fleet = Fleet(name, data_dir, env, args)
    env["FERRYMAN_CONTROL__PORT"] = str(fleet.api_port)
    fleet.ferryman("register", str(model), "--model", "digits")
    with (data_dir / "up.log").open("ab") as log:
        fleet.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("ferryman")), "up", *args],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{fleet.api_port}/healthz"), 60, name)
        fleet.ferryman("deploy", "digits", "--replicas", "1")
        wait_for(fleet.backends, 120, f"{name}: a ready replica")
        fleet.gateway = gateway_url(fleet, fleet.backends()[0])
        yield fleet
    finally:
        with contextlib.suppress(SystemExit):
            fleet.ferryman("down")
        if fleet.process.poll() is None:
            fleet.process.send_signal(signal.SIGKILL)
        fleet.process.wait(timeout=30)


def gateway_url(fleet: Fleet, backend: str) -> str:
    """The gateway that serves ``backend``'s node (on Ray, the gateway actor of its node)."""
    if fleet.name == "local":
        return f"http://127.0.0.1:{fleet.env['FERRYMAN_GATEWAY__PORT']}"
    namespace = fleet.env["FERRYMAN_RAY__NAMESPACE"]

    def found() -> str:
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == namespace and entry["name"].startswith("gateway:"):
                url = str(ray.get(ray.get_actor(entry["name"], namespace=namespace).url.remote()))
                if httpx.URL(url).host == httpx.URL(backend).host:
                    return url
        return ""

    return str(wait_for(found, 240, f"the Ray gateway on {httpx.URL(backend).host}"))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@contextmanager
def head_node(temp_dir: Path) -> Iterator[str]:
    """A one-node Ray cluster on HEAD_IP (``ray start --head --block``, stopped by its pid)."""
    temp_dir.mkdir(parents=True)
    port = gateway_bench.free_port()
    free = gateway_bench.free_port
    command = [
        str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
        "--node-ip-address", HEAD_IP, "--port", str(port), "--num-cpus", "2",
        "--temp-dir", str(temp_dir), "--include-dashboard", "false", "--disable-usage-stats",
        "--ray-client-server-port", str(free()), "--dashboard-port", str(free()),
        "--object-manager-port", str(free()), "--node-manager-port", str(free()),
        "--metrics-export-port", str(free()), "--dashboard-agent-listen-port", str(free()),
        "--dashboard-agent-grpc-port", str(free()), "--runtime-env-agent-port", str(free()),
        "--min-worker-port", "0", "--max-worker-port", "0",
        "--object-store-memory", str(80 * 1024 * 1024),
    ]  # fmt: skip
    with (temp_dir.parent / "ray-head.log").open("ab") as log:
        head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        time.sleep(3)
        if head.poll() is not None:
            sys.exit(f"ray start failed: {(temp_dir.parent / 'ray-head.log').read_text()[-800:]}")
        yield f"{HEAD_IP}:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
