"""What the gateway costs: one replica straight vs through ``ferryman gateway``, c=1/8/64.

For a digits-sized CNN and a tabular gradient-boosted model (scikit-learn, exported with
skl2onnx) it starts one ``ferryman serve`` replica each (asking for the fleet secret, as
``ferryman up`` runs them) and one ``ferryman gateway --shared-port`` in front of both (with
the fleet secret), then measures batch-1 JSON V2 infer requests with wrk (one thread,
keep-alive, closed loop) straight to the replica and through the gateway. Rounds interleave
every path at every concurrency, so a burst of other load on the machine hits them alike;
tables show the median round and the ratios are medians of per-round ratios.

    .venv/bin/python bench/gateway/overhead.py [--rounds 2] [--duration-s 5]
    .venv/bin/python bench/gateway/overhead.py --baseline-src ../main/src  # before/after

``--baseline-src DIR`` adds a second gateway run from another checkout's ``src`` (the same
replicas behind it), interleaved with the rest: a before/after of a gateway change in one
run. Targets (issue 20): the gateway keeps >= 90% of the replica's throughput at c=8 and
c=64 and adds <= 0.5 ms to p99 at c=1. "CPU µs/req" is the gateway process's user + system
time per answered request (/proc).

The load generator shares the machine with the servers; on a 2-core machine the gateway path
also pays for a second busy process, so read ratios with the core count (printed) in mind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "serving"))
from bench.wrk import Load, WrkError, run_wrk  # noqa: E402 - the benches' load generator
from models import GraphBuilder  # noqa: E402 - the serving bench's model builder

FLEET_SECRET = "bench-fleet-secret"
CONCURRENCIES = (1, 8, 64)


@dataclass
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0


@dataclass
class Model:
    name: str
    onnx: bytes
    body: bytes


def digits_cnn() -> bytes:
    """pixels FP32 [N, 1, 8, 8] -> probs [N, 10]: two 3x3 convolutions, a pool, a dense layer."""
    from onnx import TensorProto, helper  # noqa: PLC0415

    g = GraphBuilder(seed=3)
    x = g.conv("pixels", 1, 16, 3, 1, relu=True)
    x = g.conv(x, 16, 32, 3, 1, relu=True)
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    flat = g.op("Flatten", [x], axis=1)
    logits = g.op("Gemm", [flat, g.weight((32 * 4 * 4, 10), 0.05), g.weight((10,), 0.01)])
    g.op("Softmax", [logits], axis=1)
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 8, 8])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])
    return g.model("digits_cnn", pixels, probs)


def tabular_gbdt() -> bytes:
    """features FP32 [N, 20] -> label, probabilities: 100 trees of depth 3 (scikit-learn)."""
    from skl2onnx import to_onnx  # noqa: PLC0415
    from skl2onnx.common.data_types import FloatTensorType  # noqa: PLC0415
    from sklearn.datasets import make_classification  # noqa: PLC0415
    from sklearn.ensemble import GradientBoostingClassifier  # noqa: PLC0415

    x, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
    model.fit(x.astype(np.float32), y)
    onnx_model = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, 20]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return bytes(onnx_model.SerializeToString())


def models() -> list[Model]:
    rng = np.random.default_rng(0)
    pixels = rng.random(64, dtype=np.float32).round(4).tolist()
    features = rng.standard_normal(20).astype(np.float32).round(4).tolist()
    return [
        Model("digits", digits_cnn(), _infer_body("pixels", [1, 1, 8, 8], pixels)),
        Model("tabular", tabular_gbdt(), _infer_body("features", [1, 20], features)),
    ]


def _infer_body(name: str, shape: list[int], data: list[float]) -> bytes:
    tensor = {"name": name, "shape": shape, "datatype": "FP32", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="*", default=list(CONCURRENCIES))
    parser.add_argument("--models", nargs="*", default=["digits", "tabular"])
    parser.add_argument("--baseline-src", type=Path, help="Also a gateway from this src dir.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; install it with: apt-get install -y wrk")
    console = Console(width=150)
    chosen = [m for m in models() if m.name in args.models]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        replicas = {m.name: start_replica(stack, work, m) for m in chosen}
        routes = work / "routes.json"
        routes.write_text(route_table({name: url for name, (url, _) in replicas.items()}))
        gateways = {"gateway": start_gateway(stack, work, routes, ROOT / "src")}
        if args.baseline_src is not None:
            gateways["baseline"] = start_gateway(stack, work, routes, args.baseline_src.resolve())
        paths: dict[tuple[str, str], tuple[str, int, bytes]] = {}
        for model in chosen:
            url, pid = replicas[model.name]
            paths[model.name, "replica"] = (url, pid, model.body)
            for label, (gateway_url, gateway_pid) in gateways.items():
                paths[model.name, label] = (gateway_url, gateway_pid, model.body)
        for (model_name, label), (url, _, body) in paths.items():
            wait_ready(url, model_name, body, label == "replica")
            load_path(url, model_name, body, 1, 2, label == "replica")  # warm pools, the model
        results: dict[tuple[str, str, int], list[Result]] = defaultdict(list)
        total = args.rounds * len(chosen) * len(args.concurrency) * len(paths) // len(chosen)
        done = 0
        for _ in range(args.rounds):
            for model in chosen:
                for concurrency in args.concurrency:
                    for label in ("replica", *gateways):
                        url, pid, body = paths[model.name, label]
                        direct = label == "replica"
                        before = cpu_s(pid)
                        result = load_path(
                            url, model.name, body, args.duration_s, concurrency, direct
                        )
                        answered = max(result.requests_per_s * args.duration_s, 1)
                        result.cpu_us = 1e6 * (cpu_s(pid) - before) / answered
                        results[model.name, label, concurrency].append(result)
                        done += 1
                        console.print(
                            f"[{done}/{total}] {model.name} c={concurrency} {label}: "
                            f"{result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.2f} ms",
                            highlight=False,
                        )
    show(console, results, chosen, args, list(gateways))


def show(
    console: Console,
    results: dict[tuple[str, str, int], list[Result]],
    chosen: list[Model],
    args: argparse.Namespace,
    gateways: list[str],
) -> None:
    table = Table(
        title=f"replica vs through the gateway, batch-1 JSON, median of {args.rounds} "
        f"interleaved rounds of {args.duration_s} s, wrk 1 thread, {os.cpu_count()} cores"
    )
    for column in ("model", "c", "path", "req/s", "p50 ms", "p99 ms", "vs replica",
                   "p99 added ms", "CPU µs/req", "errors"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("model", "path") else "right")
    for model in chosen:
        for concurrency in args.concurrency:
            direct = results[model.name, "replica", concurrency]
            for label in ("replica", *gateways):
                runs = results[model.name, label, concurrency]
                middle = median(runs)
                pairs = list(zip(runs, direct, strict=True))
                ratios = [r.requests_per_s / d.requests_per_s for r, d in pairs]
                added = [r.p99_ms - d.p99_ms for r, d in pairs]
                is_gateway = label != "replica"
                table.add_row(
                    model.name,
                    str(concurrency),
                    label,
                    f"{middle.requests_per_s:,.0f}",
                    f"{middle.p50_ms:.2f}",
                    f"{middle.p99_ms:.2f}",
                    f"{100 * statistics.median(ratios):.0f}%" if is_gateway else "",
                    f"{statistics.median(added):+.2f}" if is_gateway else "",
                    f"{statistics.median(r.cpu_us for r in runs):.0f}",
                    str(sum(r.errors for r in runs)),
                )
        table.add_section()
    console.print(table)
    console.print(
        "targets: gateway >= 90% of the replica's req/s at c=8 and c=64, p99 added <= 0.5 ms "
        "at c=1; ratios and p99 added are medians of per-round differences"
    )


def median(runs: list[Result]) -> Result:
    return sorted(runs, key=lambda result: result.requests_per_s)[len(runs) // 2]


def start_replica(stack: ExitStack, work: Path, model: Model) -> tuple[str, int]:
    port = free_port()
    path = work / f"{model.name}.onnx"
    path.write_bytes(model.onnx)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "FERRYMAN_DATA_DIR": str(work / f"data-{model.name}"),
        "FERRYMAN_SERVING__TOKEN": FLEET_SECRET,
    }
    command = [sys.executable, "-m", "ferryman", "serve", str(path), "--name", model.name,
               "--port", str(port)]  # fmt: skip
    process = stack.enter_context(running(command, env, work / f"{model.name}.log"))
    return f"http://127.0.0.1:{port}", process.pid


def start_gateway(stack: ExitStack, work: Path, routes: Path, src: Path) -> tuple[str, int]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "FERRYMAN_DATA_DIR": str(work / f"gateway-{port}"),
        "FERRYMAN_GATEWAY__REPLICA_TOKEN": FLEET_SECRET,
    }
    command = [sys.executable, "-m", "ferryman", "gateway", "--port", str(port),
               "--routes-file", str(routes), "--shared-port"]  # fmt: skip
    process = stack.enter_context(running(command, env, work / f"gateway-{port}.log"))
    return f"http://127.0.0.1:{port}", process.pid


class running:
    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def __enter__(self) -> subprocess.Popen[bytes]:
        return self.process

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def route_table(replicas: dict[str, str]) -> str:
    endpoints = {
        name: {
            "endpoint": name,
            "variants": [
                {"name": "v1", "model": name, "version": 1, "weight": 100, "backends": [url]}
            ],
        }
        for name, url in replicas.items()
    }
    return json.dumps({"generation": 1, "endpoints": endpoints})


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def wait_ready(url: str, model: str, body: bytes, direct: bool, timeout_s: float = 90) -> None:
    headers = {"content-type": "application/json"}
    if direct:
        headers["authorization"] = f"Bearer {FLEET_SECRET}"
    deadline = time.monotonic() + timeout_s
    answer = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(url + infer_path(model), content=body, headers=headers, timeout=5)
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    detail = answer.text[:300] if answer is not None else "no answer"
    sys.exit(f"{url} did not answer {infer_path(model)} within {timeout_s} s: {detail}")


def load_path(  # noqa: PLR0917 - one load run, all of it
    url: str, model: str, body: bytes, duration_s: int, concurrency: int, direct: bool
) -> Result:
    """One wrk run, one thread, of ``body`` to ``model``'s infer path; ``direct``: straight
    to a replica, which asks for the fleet secret."""
    headers = {"Content-Type": "application/json"}
    if direct:
        headers["Authorization"] = f"Bearer {FLEET_SECRET}"
    try:
        found = run_wrk(url + infer_path(model), body, headers, Load(duration_s, concurrency))
    except WrkError as error:
        sys.exit(str(error))
    return Result(found.requests_per_s, found.p50_ms, found.p99_ms, found.errors)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
