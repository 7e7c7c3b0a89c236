"""Gateway benchmark: throughput and latency through the gateway vs straight to one replica.

One run, one load tool (wrk, keep-alive, concurrency 64 by default), the same replica: first
directly, then through the gateway with its own connection pool (httptools, the default of
``ferryman gateway``), then through the same gateway with aiohttp and with httpx transports
(the alternatives the choice was measured against, in ``transports.py``). Rounds interleave
the paths and the median round is shown, so a burst of other load on the machine hits every
path alike. The replica is ``ferryman serve`` on a digits-sized ONNX MLP when that command
exists, else the stand-in replica from the tests (the output says which).

    .venv/bin/python bench/gateway/run.py [--duration-s 10] [--concurrency 64] [--rounds 3]
    .venv/bin/python bench/gateway/run.py --tokens   # inference-token checking off vs on

``--tokens`` runs the secured fleet instead (issue 14): the replica asks for the fleet
secret, which the gateway sends, and the endpoint is served by two gateways that differ in
one thing only: one requires the endpoint's inference token (among 1,000 live tokens in the
route table), the other does not. Target: on/off >= 0.97. After the interleaved rounds it
loads both gateways at once (half the concurrency each), which a busy machine disturbs far
less: both share whatever else runs.

Needs wrk (Debian: ``apt-get install -y wrk``). The load generator shares the machine with
both servers; on a 2-core machine the gateway path pays for a second busy process, so read
the ratio with the core count in mind (it is printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from rich.table import Table

from ferryman.config import GatewaySettings, Settings
from ferryman.gateway import Gateway
from ferryman.gateway.server import build_server
from ferryman.registry import token_digest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from bench.wrk import Load, WrkError, run_wrk  # noqa: E402 - the benches' load generator
from transports import AiohttpTransport, HttpxTransport  # noqa: E402 - the bench's own module

PATH = "/v2/models/digits/infer"
BODY = {
    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.5] * 64}]
}
TRANSPORTS = ("httptools", "aiohttp", "httpx")
FLEET_SECRET = "bench-fleet-secret"
INFER_TOKEN = "fm_bench-inference-token"
OTHER_TOKENS = 999
"""Live inference tokens of other endpoints in the table: the lookup is a dict of 1,000."""


@dataclass
class Result:
    path: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    replica_cpu_us: float = 0.0
    gateway_cpu_us: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; median shown.")
    parser.add_argument(
        "--tokens", action="store_true", help="Inference-token checking off vs on (issue 14)."
    )
    parser.add_argument(
        "--serve-gateway", nargs=3, metavar=("PORT", "ROUTES", "TRANSPORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_gateway:
        serve_gateway(
            int(args.serve_gateway[0]), Path(args.serve_gateway[1]), args.serve_gateway[2]
        )
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; install it with: apt-get install -y wrk")
    console = Console()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        secret = FLEET_SECRET if args.tokens else None
        replica, kind, replica_pid = start_replica(stack, work, secret)
        paths = (
            token_paths(stack, work, replica)
            if args.tokens
            else transport_paths(stack, work, replica)
        )
        for url, _, auth in paths.values():
            wait_ready(url, auth)
            load_path(url, 1, 2, auth=auth)  # warm the pools and the model
        rounds: dict[str, list[Result]] = {label: [] for label in paths}
        for _ in range(args.rounds):  # interleaved, so a burst of other load hits all paths
            for label, (url, gateway_pid, auth) in paths.items():
                pids = (replica_pid, gateway_pid)
                rounds[label].append(measure(url, args, label, pids, auth))
        side_by_side = together(paths, args) if args.tokens else []
    results = [median(runs) for runs in rounds.values()]
    show(console, results, kind, args)
    if args.tokens:
        off, on = results[1].requests_per_s, results[2].requests_per_s
        console.print(f"token checking on/off, medians: {on / off:.3f} (target >= 0.97)")
        # Each round runs off then on back to back: their ratio shares that moment's load.
        offs, ons = (rounds[label] for label in list(paths)[1:])
        pairs = sorted(b.requests_per_s / a.requests_per_s for a, b in zip(offs, ons, strict=True))
        console.print(
            f"token checking on/off, round by round: median {pairs[len(pairs) // 2]:.3f} "
            f"(from {pairs[0]:.3f} to {pairs[-1]:.3f})"
        )
        console.print(
            f"token checking on/off, both gateways loaded at once (c{args.concurrency // 2} "
            f"each): median {side_by_side[len(side_by_side) // 2]:.3f} of {args.rounds} rounds "
            f"(from {side_by_side[0]:.3f} to {side_by_side[-1]:.3f})"
        )


def together(paths: dict[str, Path_], args: argparse.Namespace) -> list[float]:
    """On/off throughput ratios with both gateways under wrk at the same time, half the
    concurrency each: whatever else loads the machine loads both alike (sorted)."""
    (off_url, _, off_auth), (on_url, _, on_auth) = list(paths.values())[1:]
    half = max(args.concurrency // 2, 1)
    ratios = []
    for _ in range(args.rounds):
        with ThreadPoolExecutor(2) as pool:
            off = pool.submit(load_path, off_url, args.duration_s, half, "off", off_auth)
            on = pool.submit(load_path, on_url, args.duration_s, half, "on", on_auth)
            ratios.append(on.result().requests_per_s / off.result().requests_per_s)
    return sorted(ratios)


Path_ = tuple[str, int, str | None]
"""A measured path: its URL, the gateway's pid (0: none) and the Authorization it sends."""


def transport_paths(stack: ExitStack, work: Path, replica: str) -> dict[str, Path_]:
    """Straight to the replica, then one gateway per transport."""
    routes = work / "routes.json"
    routes.write_text(route_table(replica))
    paths: dict[str, Path_] = {"direct to the replica": (replica, 0, None)}
    for name in TRANSPORTS:
        url, pid = start_gateway(stack, routes, name)
        paths[f"gateway ({name} pools)"] = (url, pid, None)
    return paths


def token_paths(stack: ExitStack, work: Path, replica: str) -> dict[str, Path_]:
    """Straight to the replica (with the fleet secret), then gateways without and with an
    endpoint that requires an inference token; both send the replica the fleet secret."""
    fleet = f"Bearer {FLEET_SECRET}"
    paths: dict[str, Path_] = {"direct to the replica (fleet secret)": (replica, 0, fleet)}
    for label, required in (("gateway, token checking off", False),
                            ("gateway, token checking on", True)):  # fmt: skip
        routes = work / f"routes-{required}.json"
        routes.write_text(route_table(replica, require_token=required))
        url, pid = start_gateway(stack, routes, "httptools", FLEET_SECRET)
        paths[label] = (url, pid, f"Bearer {INFER_TOKEN}" if required else None)
    return paths


def median(runs: list[Result]) -> Result:
    """The round with the median throughput (its latencies come with it)."""
    return sorted(runs, key=lambda result: result.requests_per_s)[len(runs) // 2]


def measure(
    url: str, args: argparse.Namespace, label: str, pids: tuple[int, int], auth: str | None
) -> Result:
    """One wrk run, with the CPU time the replica and the gateway spent per request."""
    before = [cpu_s(pid) for pid in pids]
    result = load_path(url, args.duration_s, args.concurrency, label, auth)
    spent = [cpu_s(pid) - start for pid, start in zip(pids, before, strict=True)]
    count = max(result.requests_per_s * args.duration_s, 1)
    result.replica_cpu_us, result.gateway_cpu_us = (1e6 * s / count for s in spent)
    return result


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere or for pid 0)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_replica(stack: ExitStack, work: Path, secret: str | None) -> tuple[str, str, int]:
    port = free_port()
    env = {**os.environ, "FERRYMAN_DATA_DIR": str(work / "data")}
    if secret is not None:
        env["FERRYMAN_SERVING__TOKEN"] = secret
    if importlib.util.find_spec("ferryman.cli.serve") and importlib.util.find_spec("onnxruntime"):
        model = work / "digits.onnx"
        model.write_bytes(digits_mlp())
        ferryman = str(Path(sys.executable).parent / "ferryman")
        command = [ferryman, "serve", str(model), "--name", "digits", "--port", str(port)]
        kind = "ferryman serve (ONNX Runtime, digits-sized MLP)"
    else:
        command = [sys.executable, "-c", STANDIN.format(port=port)]
        kind = "the stand-in replica from tests/gateway (no inference)"
    process = stack.enter_context(running(command, env))
    return f"http://127.0.0.1:{port}", kind, process.pid


STANDIN = """
import socket
from tests.gateway.standin import main
import sys
sock = socket.create_server(("127.0.0.1", {port}))
sys.argv = ["standin", "--fd", str(sock.fileno()), "--variant", "digits"]
main()
"""


def start_gateway(
    stack: ExitStack, routes: Path, transport: str, secret: str | None = None
) -> tuple[str, int]:
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__)),
        "--serve-gateway",
        str(port),
        str(routes),
        transport,
    ]
    env = {**os.environ, **({"BENCH_REPLICA_TOKEN": secret} if secret else {})}
    process = stack.enter_context(running(command, env))
    return f"http://127.0.0.1:{port}", process.pid


def serve_gateway(port: int, routes: Path, transport: str) -> None:
    """Run a gateway in this process (the bench's child), with the transport named."""
    secret = os.environ.get("BENCH_REPLICA_TOKEN")
    gateway_settings = GatewaySettings(port=port, routes_file=routes, replica_token=secret)
    settings = Settings(gateway=gateway_settings)
    gateway = Gateway(settings.gateway, routes_file=routes)
    if transport == "httpx":
        gateway = Gateway(settings.gateway, routes_file=routes, transport=HttpxTransport)
    elif transport == "aiohttp":
        gateway = Gateway(settings.gateway, routes_file=routes, transport=AiohttpTransport)
    build_server(settings, gateway).run()


class running:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        quiet = subprocess.DEVNULL
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=quiet, stderr=quiet)

    def __enter__(self) -> subprocess.Popen[bytes]:
        return self.process

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def route_table(replica: str, require_token: bool = False) -> str:
    variant = {"name": "v1", "model": "digits", "version": 1, "weight": 100, "backends": [replica]}
    route = {"endpoint": "digits", "variants": [variant], "require_token": require_token}
    tokens = {token_digest(f"fm_other-{n}"): f"other{n % 50}" for n in range(OTHER_TOKENS)}
    tokens[token_digest(INFER_TOKEN)] = "digits"
    return json.dumps({"generation": 1, "endpoints": {"digits": route}, "inference_tokens": tokens})


def wait_ready(url: str, auth: str | None = None, timeout_s: float = 60) -> None:
    headers = {"authorization": auth} if auth else {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.post(url + PATH, json=BODY, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not answer {PATH} within {timeout_s} s")


def load_path(
    url: str, duration_s: int, concurrency: int, label: str = "", auth: str | None = None
) -> Result:
    """One wrk run of the measured path ``label``: BODY posted to ``url``, up to 2 threads."""
    headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
    load = Load(duration_s, concurrency, threads=min(2, concurrency))
    try:
        found = run_wrk(url + PATH, json.dumps(BODY).encode(), headers, load)
    except WrkError as error:
        sys.exit(str(error))
    return Result(label, found.requests_per_s, found.p50_ms, found.p99_ms, found.errors)


def show(console: Console, results: list[Result], kind: str, args: argparse.Namespace) -> None:
    direct = results[0].requests_per_s
    table = Table(
        title=f"gateway vs direct, concurrency {args.concurrency}, median of {args.rounds} "
        f"interleaved rounds of {args.duration_s} s, {os.cpu_count()} cores"
    )
    columns = ("path", "req/s", "p50 ms", "p99 ms", "errors", "vs direct", "replica", "gateway")
    for column in columns:
        table.add_column(column, justify="left" if column == "path" else "right")
    for result in results:
        ratio = f"{100 * result.requests_per_s / direct:.0f}%"
        table.add_row(
            result.path,
            f"{result.requests_per_s:,.0f}",
            f"{result.p50_ms:.2f}",
            f"{result.p99_ms:.2f}",
            str(result.errors),
            ratio,
            f"{result.replica_cpu_us:.0f}",
            f"{result.gateway_cpu_us:.0f}" if result.gateway_cpu_us else "-",
        )
    console.print(table)
    console.print("replica, gateway: CPU time each process spent per request, in µs")
    console.print(f"replica: {kind}; target: the gateway keeps >= 80% of the direct throughput")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def digits_mlp() -> bytes:
    """pixels FP32 [N, 1, 8, 8] -> probabilities [N, 10]: 64-128-10, ReLU, softmax (seeded)."""

    rng = np.random.default_rng(1)
    weights = {
        "w1": rng.standard_normal((64, 128)) * 0.1,
        "b1": np.zeros(128),
        "w2": rng.standard_normal((128, 10)) * 0.1,
        "b2": np.zeros(10),
    }
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])
    init = [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()]
    graph = helper.make_graph(nodes, "digits", [x], [y], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


if __name__ == "__main__":
    main()
