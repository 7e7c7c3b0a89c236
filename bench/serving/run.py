"""Serving benchmark: one run, one load tool (wrk, on loopback), concurrency 1 / 8 / 64.

For the digits-sized MLP and a ResNet-18-sized CNN it measures, side by side:
the in-process ONNX Runtime ceiling (batch 1 and best batch), a bare ASGI endpoint returning
constant JSON (the HTTP floor of this machine), a naive FastAPI + uvicorn + ONNX Runtime
server (digits only: it speaks JSON, and 150 k floats of JSON per image measure JSON, not
serving), and the Ferryman replica (``ferryman serve model.onnx``; binary tensors for ResNet).

    .venv/bin/python bench/serving/run.py [--duration-s 5] [--json results.json]

The load generator shares the machine with the servers; on a small machine that costs the
HTTP servers more than the in-process ceiling, so read ratios with the core count in mind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from models import digits_mlp, resnet18

HERE = Path(__file__).parent
LUA = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local length = os.getenv("BENCH_HEADER_LENGTH")
if length ~= nil and length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = length
end
"""


@dataclass
class Result:
    model: str
    server: str
    concurrency: int
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int


@dataclass
class Workload:
    name: str
    model_path: Path
    body_path: Path
    content_type: str
    header_length: str
    servers: tuple[str, ...]
    duration_factor: int = 1
    """ResNet runs longer: at concurrency 64 its first batches alone take seconds."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_workloads(directory: Path) -> list[Workload]:
    digits, resnet = directory / "digits.onnx", directory / "resnet18.onnx"
    digits.write_bytes(digits_mlp())
    resnet.write_bytes(resnet18())
    pixels = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    digits_body = directory / "digits.json"
    digits_body.write_text(json.dumps({"inputs": [{"name": "pixels", "shape": [1, 1, 8, 8],
        "datatype": "FP32", "data": pixels.ravel().round(4).tolist()}]}))  # fmt: skip
    image = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    header = json.dumps({
        "inputs": [{"name": "image", "shape": [1, 3, 224, 224], "datatype": "FP32",
                    "parameters": {"binary_data_size": image.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    resnet_body = directory / "resnet.bin"
    resnet_body.write_bytes(header + image.tobytes())
    return [
        Workload("digits", digits, digits_body, "application/json", "",
                 ("bare", "naive", "ferryman")),
        Workload("resnet18", resnet, resnet_body, "application/octet-stream", str(len(header)),
                 ("bare", "ferryman"), duration_factor=4),
    ]  # fmt: skip


def ceiling(
    model: Path, shape: tuple[int, ...], batches: tuple[int, ...], seconds: float
) -> dict[int, float]:
    """Rows per second of ONNX Runtime called in process, per batch size."""
    session = onnxruntime.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rates = {}
    for batch in batches:
        x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
        session.run(None, {name: x})
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            session.run(None, {name: x})
            calls += 1
        rates[batch] = calls * batch / (time.perf_counter() - started)
    return rates


def start(kind: str, workload: Workload, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    python = sys.executable
    if kind == "ferryman":
        cli = [python, "-c", "from ferryman.cli.main import main; main()"]
        command = [*cli, "--data-dir", str(data_dir), "serve", str(workload.model_path),
                   "--port", str(port)]  # fmt: skip
    else:
        command = [python, str(HERE / "servers.py"), kind, str(port), str(workload.model_path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code < 500:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def wrk(
    url: str, workload: Workload, concurrency: int, seconds: float, lua: Path
) -> tuple[float, float | None, float | None, int]:
    env = os.environ | {"BENCH_BODY": str(workload.body_path),
                        "BENCH_CONTENT_TYPE": workload.content_type,
                        "BENCH_HEADER_LENGTH": workload.header_length}  # fmt: skip
    threads = min(concurrency, 2)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(int(seconds), 1)}s", "--latency",
               "--timeout", "30s", "-s", str(lua), url]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rate, _percentile(out, "50"), _percentile(out, "99"), errors


def _percentile(out: str, which: str) -> float | None:
    match = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def measure_servers(workload: Workload, args: argparse.Namespace, work: Path) -> list[Result]:
    lua = work / "post.lua"
    lua.write_text(LUA)
    results = []
    for kind in workload.servers:
        port = free_port()
        process = start(kind, workload, port, work / f"data-{kind}")
        url = f"http://127.0.0.1:{port}/v2/models/{workload.name}/infer"
        try:
            wrk(url, workload, 8, 1, lua)  # warm-up
            for concurrency in args.concurrency:
                seconds = args.duration_s * workload.duration_factor
                rate, p50, p99, errors = wrk(url, workload, concurrency, seconds, lua)
                results.append(Result(workload.name, kind, concurrency, rate, p50, p99, errors))
        finally:
            process.terminate()
            process.wait(30)
    return results


def report(
    results: list[Result], ceilings: dict[str, dict[int, float]], console: Console
) -> dict[str, float]:
    table = Table(title=f"Serving benchmark ({os.cpu_count()} CPUs, wrk on loopback)")
    for column in ("model", "server", "conc.", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="right" if column not in ("model", "server") else "left")
    for model, rates in ceilings.items():
        best = max(rates, key=rates.__getitem__)
        table.add_row(model, "in-process ORT, batch 1", "-", f"{rates[1]:.0f}", "", "", "")
        table.add_row(
            model, f"in-process ORT, best batch ({best})", "-", f"{rates[best]:.0f}", "", "", ""
        )
    for r in results:
        table.add_row(r.model, r.server, str(r.concurrency), f"{r.requests_per_s:.0f}",
                      _ms(r.p50_ms), _ms(r.p99_ms), str(r.errors))  # fmt: skip
    console.print(table)
    return ratios(results, ceilings, console)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def ratios(
    results: list[Result], ceilings: dict[str, dict[int, float]], console: Console
) -> dict[str, float]:
    by = {(r.model, r.server, r.concurrency): r for r in results}
    top = max(by[k].concurrency for k in by)
    figures = {}
    ferry, bare = by.get(("digits", "ferryman", top)), by.get(("digits", "bare", top))
    naive = by.get(("digits", "naive", top))
    if ferry and bare:
        figures[f"digits c{top}: ferryman / bare ASGI (target >= 0.70)"] = (
            ferry.requests_per_s / bare.requests_per_s
        )
    if ferry and naive:
        figures[f"digits c{top}: ferryman / naive FastAPI (target >= 2.0)"] = (
            ferry.requests_per_s / naive.requests_per_s
        )
    resnet = by.get(("resnet18", "ferryman", top))
    if resnet and "resnet18" in ceilings:
        best = max(ceilings["resnet18"].values())
        figures[f"resnet18 c{top} binary: ferryman / in-process best batch (target >= 0.85)"] = (
            resnet.requests_per_s / best
        )
    one = by.get(("digits", "ferryman", 1))
    if one and one.p99_ms is not None:
        figures["digits c1: ferryman p99 ms (target < 3)"] = one.p99_ms
    table = Table(title="Ratios the issue asks for")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.2f}")
    console.print(table)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--models", nargs="+", default=["digits", "resnet18"])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    console = Console()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        workloads = [w for w in write_workloads(work) if w.name in args.models]
        shapes = {
            "digits": ((1, 8, 8), (1, 8, 32, 64, 128)),
            "resnet18": ((3, 224, 224), (1, 4, 8, 16)),
        }
        # The ceiling is measured before and after the servers and the better figure kept:
        # on a shared machine that makes the ratio to it conservative.
        before = {w.name: ceiling(w.model_path, *shapes[w.name], seconds=2) for w in workloads}
        results = [r for w in workloads for r in measure_servers(w, args, work)]
        after = {w.name: ceiling(w.model_path, *shapes[w.name], seconds=2) for w in workloads}
        ceilings = {
            name: {b: max(rates[b], after[name][b]) for b in rates}
            for name, rates in before.items()
        }
    figures = report(results, ceilings, console)
    if args.json:
        document = {"cpus": os.cpu_count(), "results": [asdict(r) for r in results],
                    "ceilings": ceilings, "ratios": figures}  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
