"""Replica benchmark: what one replica, as deployed by default, makes of the machine.

In one run, interleaved round by round so a burst of other load hits every side alike:

* ResNet-18 224² (random weights) at concurrency 8 and 64 with JSON bodies and with V2
  binary tensors, against ONNX Runtime called in process at its best batch size (the best of
  one session with its default threads and of one session called from one thread per core
  with one intra-op thread each), measured in the same round;
* the replicas' CPU time per answered request (all their threads): what a request costs,
  which a busy machine skews far less than the rates (on a quiet machine the rate of a
  replica that keeps every core busy is the cores over this cost);
* the digits-sized model: resident memory (RSS) at ready and after sustained load (wrk,
  concurrency 64), and the time from spawning ``ferryman serve`` to its first answer, served
  from a file and from a registry (what a deployment's replica does).

    .venv/bin/python bench/serving/replica.py [--rounds 2] [--duration-s 10]
        [--baseline-src OTHER_CHECKOUT/src]   # the same figures for another checkout, side by side

Every replica runs with the settings a deployment gives it by default (nothing tuned).
Tables show medians over rounds; the ratios are medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))
from bench.wrk import WrkResult
from models import digits_mlp, resnet18
from run import Workload, cpu_s, free_port, wrk

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Side:
    """One checkout's replica: ``new`` is this one, ``old`` the ``--baseline-src`` one."""

    name: str
    src: Path
    overrides: tuple[tuple[str, str], ...] = ()
    """Serving settings set through the environment (none: the default deployment)."""

    def env(self) -> dict[str, str]:
        return os.environ | {"PYTHONPATH": str(self.src)} | dict(self.overrides)


PER_CORE = (("FERRYMAN_SERVING__MODEL_CALLS", "1"), ("FERRYMAN_SERVING__INTRA_OP_THREADS", "1"))
"""The other way to use every core: one single-threaded replica per core, the load split
evenly between them (what a perfectly balancing gateway, or worker processes sharing a
port, could at best do), measured as ``per-core``."""


def ferryman(side: Side, data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ferryman", "--data-dir", str(data_dir), *args]


def write_inputs(work: Path) -> dict[str, Workload]:
    """The models and request bodies (JSON as a client's json.dumps writes it)."""
    digits, resnet = work / "digits.onnx", work / "resnet18.onnx"
    digits.write_bytes(digits_mlp())
    resnet.write_bytes(resnet18())
    pixels = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    (work / "digits.json").write_text(json.dumps({"inputs": [{"name": "pixels",
        "shape": [1, 1, 8, 8], "datatype": "FP32", "data": pixels.ravel().tolist()}]}))  # fmt: skip
    image = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    tensor = {"name": "image", "shape": [1, 3, 224, 224], "datatype": "FP32",
              "data": image.ravel().tolist()}  # fmt: skip
    (work / "resnet.json").write_text(json.dumps({"inputs": [tensor]}))
    header = json.dumps({
        "inputs": [{"name": "image", "shape": [1, 3, 224, 224], "datatype": "FP32",
                    "parameters": {"binary_data_size": image.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    (work / "resnet.bin").write_bytes(header + image.tobytes())
    json_type = "application/json"
    return {
        "digits": Workload("digits", digits, work / "digits.json", json_type, "", ()),
        "resnet json": Workload("resnet18", resnet, work / "resnet.json", json_type, "", ()),
        "resnet binary": Workload("resnet18", resnet, work / "resnet.bin",
                                  "application/octet-stream", str(len(header)), ()),
    }  # fmt: skip


def post(port: int, body: bytes, path: str, timeout_s: float = 5.0) -> int:
    """One HTTP/1.1 POST on a fresh connection: the status code (0 when refused)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json"
                    f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")  # fmt: skip
            sock.sendall(head.encode() + body)
            answer = sock.recv(64)
    except OSError:
        return 0
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def load(
    ports: list[int], workload: Workload, concurrency: int, seconds: int
) -> tuple[float, float | None, int]:
    """wrk against every port at once, the connections split evenly: total req/s, the
    highest p99 (ms) and the errors."""
    results: list[WrkResult] = []
    share = max(concurrency // len(ports), 1)

    def one(port: int) -> None:
        url = f"http://127.0.0.1:{port}/v2/models/{workload.name}/infer"
        results.append(wrk(url, workload, share, seconds))

    threads = [threading.Thread(target=one, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p99 = max((r.p99_ms for r in results), default=None)  # None: every run failed
    return sum(r.requests_per_s for r in results), p99, sum(r.errors for r in results)


def spawn(side: Side, data_dir: Path, target: str, port: int) -> subprocess.Popen[bytes]:
    command = ferryman(side, data_dir, "serve", target, "--port", str(port))
    return subprocess.Popen(
        command, env=side.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def first_answer(
    side: Side, data_dir: Path, target: str, model: str, body: bytes
) -> tuple[float, subprocess.Popen[bytes], int]:
    """Seconds from spawning the replica to its first 200 answer; the process; its port."""
    port = free_port()
    started = time.perf_counter()
    process = spawn(side, data_dir, target, port)
    path = f"/v2/models/{model}/infer"
    while time.perf_counter() - started < 60:
        if post(port, body, path, 1.0) == 200:
            return time.perf_counter() - started, process, port
        if process.poll() is not None:
            break
        time.sleep(0.005)
    process.kill()
    raise RuntimeError(f"{side.name} replica of {target} gave no answer")


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the replica on port {port} did not become ready")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ort_best(model: Path, seconds: float) -> tuple[float, str, float]:
    """ONNX Runtime in process at its best: rows/s, how (threads, batch), CPU ms per row."""
    cores = len(os.sched_getaffinity(0))
    image = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)
    best = (0.0, "", 0.0)
    default = onnxruntime.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    single = onnxruntime.InferenceSession(
        model.read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    for batch in (1, 4, 8):
        x = {"image": image[:batch]}
        for session, threads, how in (
            (default, 1, f"1 call at a time, default threads, batch {batch}"),
            (single, cores, f"{cores} calls at once, 1 thread each, batch {batch}"),
        ):
            used = time.process_time()
            calls = _rate(lambda s=session, x=x: s.run(None, x), threads, seconds)  # type: ignore[misc]
            cpu_ms = 1000 * (time.process_time() - used) / max(calls * seconds * batch, 1)
            best = max(best, (calls * batch, how, cpu_ms))
    return best


def _rate(call: Callable[[], object], threads: int, seconds: float) -> float:
    """Calls per second of ``call`` from ``threads`` threads at once."""
    call()
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            call()
            counts[index] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def register(side: Side, data_dir: Path, model: Path) -> None:
    command = ferryman(side, data_dir, "register", str(model), "--model", "digits")
    subprocess.run(command, env=side.env(), check=True, capture_output=True)


def main() -> None:  # noqa: PLR0912, PLR0915 (one run, told in order)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration-s", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src, side by side")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--no-per-core", action="store_true", help="skip the one-replica-per-core comparison"
    )
    args = parser.parse_args()
    sides = [Side("new", SRC)]
    if args.baseline_src:
        sides.append(Side("old", args.baseline_src.resolve()))
    console = Console(width=max(Console().width, 120))
    console.print(f"{os.cpu_count()} CPUs; load before: {os.getloadavg()[0]:.1f}")
    figures: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack, Progress() as progress:
        work = Path(directory)
        workloads = write_inputs(work)
        digits_body = workloads["digits"].body_path.read_bytes()
        for side in sides:
            register(side, work / f"data-{side.name}", workloads["digits"].model_path)
        servers: dict[str, list[int]] = {}
        pids: dict[str, list[int]] = defaultdict(list)
        resnet_sides = [*sides]
        if not args.no_per_core:
            resnet_sides.append(Side("per-core", SRC, PER_CORE))
        for side in resnet_sides:  # the ResNet replicas stay up through every round
            count = len(os.sched_getaffinity(0)) if side.name == "per-core" else 1
            for _ in range(count):
                port = free_port()
                model = str(workloads["resnet json"].model_path)
                process = spawn(side, work / "files", model, port)
                stack.callback(stop, process)
                servers.setdefault(side.name, []).append(port)
                pids[side.name].append(process.pid)
        for ports in servers.values():
            for port in ports:
                wait_ready(port)
        cells = len(sides) * 3 + len(resnet_sides) * 2 * len(args.concurrency) + 1
        task = progress.add_task("rounds", total=args.rounds * cells)
        for index in range(args.rounds):
            order = sides if index % 2 == 0 else sides[::-1]
            for side in order:  # start-up and memory of the digits replica
                for where, target in (("file", str(workloads["digits"].model_path)),
                                      ("registry", "digits:1")):  # fmt: skip
                    data = work / f"data-{side.name}"
                    seconds, process, port = first_answer(side, data, target, "digits", digits_body)
                    figures[f"{side.name} first answer s ({where})"].append(seconds)
                    if where == "registry":
                        figures[f"{side.name} RSS MiB at ready (registry)"].append(
                            rss_mib(process.pid)
                        )
                        url = f"http://127.0.0.1:{port}/v2/models/digits/infer"
                        wrk(url, workloads["digits"], 64, args.duration_s)
                        figures[f"{side.name} RSS MiB after load (registry)"].append(
                            rss_mib(process.pid)
                        )
                        progress.advance(task)
                    stop(process)
                    progress.advance(task)
            rate, how, ort_cpu_ms = ort_best(workloads["resnet json"].model_path, 3)
            figures["ORT in process, best (img/s)"].append(rate)
            figures["ORT in process, best: CPU ms/img"].append(ort_cpu_ms)
            figures[f"ORT best: {how}"].append(rate)
            progress.advance(task)
            for concurrency in args.concurrency:
                for body in ("resnet json", "resnet binary"):
                    for side in resnet_sides if index % 2 == 0 else resnet_sides[::-1]:
                        before = sum(cpu_s(pid) for pid in pids[side.name])
                        found, p99, errors = load(
                            servers[side.name], workloads[body], concurrency, args.duration_s
                        )
                        used_s = sum(cpu_s(pid) for pid in pids[side.name]) - before
                        name = f"{side.name} {body} c{concurrency}"
                        figures[f"{name} (req/s)"].append(found)
                        if found:
                            answered = found * args.duration_s
                            figures[f"{name} CPU ms/req"].append(1000 * used_s / answered)
                        if p99 is not None:
                            figures[f"{name} p99 ms"].append(p99)
                        figures[f"{name} / ORT best"].append(found / rate)
                        if errors:
                            figures[f"{name} errors"].append(errors)
                        progress.advance(task)
    report(figures, sides, args, console)


def report(
    figures: dict[str, list[float]], sides: list[Side], args: argparse.Namespace, console: Console
) -> None:
    """One row per figure, one column per side, and the ratios of ``new`` to the others
    (medians of per-round ratios)."""
    names = [side.name for side in sides]
    if any(name.startswith("per-core ") for name in figures):
        names.append("per-core")
    table = Table(title=f"Replica benchmark ({os.cpu_count()} CPUs, median of {args.rounds})")
    table.add_column("figure")
    for name in names:
        table.add_column(name, justify="right")
    for name in names[1:]:
        table.add_column(f"new / {name}", justify="right")
    table.add_column("rounds (new)", justify="right")
    rows = sorted({name.split(" ", 1)[1] for name in figures if name.startswith("new ")})
    for row_name in rows:
        values = [figures.get(f"{name} {row_name}") or [] for name in names]
        row = [row_name, *(f"{statistics.median(v):.3g}" if v else "" for v in values)]
        for other in values[1:]:
            pairs = [(a, b) for a, b in zip(values[0], other, strict=False) if b]
            row.append(f"{statistics.median(a / b for a, b in pairs):.2f}" if pairs else "")
        row.append(", ".join(f"{v:.3g}" for v in values[0]))
        table.add_row(*row)
    blank = [""] * (2 * len(names) - 1)
    for name, values in figures.items():
        if name.startswith("ORT"):
            table.add_row(name, f"{statistics.median(values):.3g}", *blank)
    console.print(table)
    console.print(f"load after: {os.getloadavg()[0]:.1f} (other work on the machine skews it)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
