"""Serving benchmark: one run, one load tool (wrk, on loopback), concurrency 1 / 8 / 64.

For the digits-sized MLP and a ResNet-18-sized CNN it measures, side by side:
the in-process ONNX Runtime ceiling (batch 1 and best batch), a bare ASGI endpoint returning
constant JSON (the HTTP floor of this machine), the minimal honest server (raw ASGI, orjson,
one ONNX Runtime call per request: the most any Python server can reach), a naive FastAPI +
uvicorn + ONNX Runtime server (digits only: it speaks JSON, and 150 k floats of JSON per
image measure JSON, not serving), and the Ferryman replica (``ferryman serve model.onnx``;
binary tensors for ResNet).

    .venv/bin/python bench/serving/run.py [--quick] [--rounds 3] [--duration-s 5] [--json out.json]

All servers of a model run at once (idle ones cost nothing) under the same uvicorn settings,
and the rounds interleave them: in each round every server gets each concurrency in turn, so
a burst of other load on the machine hits them alike. Tables show the median round; the
ratios the issue asks for are medians of per-round ratios (each pair measured minutes
apart at most). "CPU µs/req" is the server process's user + system time per answered request
(/proc), a figure that does not depend on how many cores the load generator took.
``--quick`` (two rounds of 2 s; ResNet-18 at concurrency 64 only, 20 s a run) takes about
four minutes. ``--baseline-src DIR`` adds a "baseline" replica run from another checkout's
``src`` directory, interleaved with the rest: a before/after of a change in one run.

The load generator shares the machine with the servers; on a small machine that costs the
HTTP servers more than the in-process ceiling, so read ratios with the core count in mind.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))
from bench.wrk import Load, WrkResult, run_wrk
from models import digits_mlp, resnet18

HERE = Path(__file__).parent


@dataclass
class Result:
    model: str
    server: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0
    """Server CPU time (user + system, all threads) per answered request, in µs."""


@dataclass
class Workload:
    name: str
    model_path: Path
    body_path: Path
    content_type: str
    header_length: str
    servers: tuple[str, ...]
    min_duration_s: int = 1
    """ResNet runs longer: at concurrency 64 one round of 64 images takes seconds."""


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
                 ("bare", "minimal", "naive", "ferryman")),
        Workload("resnet18", resnet, resnet_body, "application/octet-stream", str(len(header)),
                 ("bare", "ferryman"), min_duration_s=20),
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


def start(
    kind: str, workload: Workload, port: int, data_dir: Path, baseline_src: Path | None = None
) -> subprocess.Popen[bytes]:
    python = sys.executable
    env = None
    if kind in ("ferryman", "baseline"):
        cli = [python, "-c", "from ferryman.cli.main import main; main()"]
        command = [*cli, "--data-dir", str(data_dir), "serve", str(workload.model_path),
                   "--port", str(port)]  # fmt: skip
        if kind == "baseline" and baseline_src is not None:
            env = os.environ | {"PYTHONPATH": str(baseline_src)}
    else:
        command = [python, str(HERE / "servers.py"), kind, str(port), str(workload.model_path)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code < 500:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def wrk(url: str, workload: Workload, concurrency: int, seconds: int) -> WrkResult:
    """One wrk run of ``workload``'s body: up to 2 threads, 30 s before a request times out."""
    headers = {"Content-Type": workload.content_type}
    if workload.header_length:
        headers["Inference-Header-Content-Length"] = workload.header_length
    load = Load(max(seconds, 1), concurrency, threads=min(concurrency, 2), timeout_s=30)
    return run_wrk(url, workload.body_path.read_bytes(), headers, load)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_servers(
    workload: Workload, args: argparse.Namespace, work: Path
) -> tuple[list[Result], list[list[Result]]]:
    """Every server of ``workload`` in interleaved rounds: (median results, all rounds)."""
    seconds = max(args.duration_s, workload.min_duration_s)
    concurrencies = args.concurrency
    if args.quick and workload.name == "resnet18":  # its figure is at the top concurrency
        concurrencies = [max(args.concurrency)]
    rounds: list[list[Result]] = []
    with ExitStack() as stack:
        urls: dict[str, tuple[str, int]] = {}
        kinds = (*workload.servers, *(("baseline",) if args.baseline_src else ()))
        for kind in kinds:
            port = free_port()
            process = start(kind, workload, port, work / f"data-{kind}", args.baseline_src)
            stack.callback(_stop, process)
            urls[kind] = (f"http://127.0.0.1:{port}/v2/models/{workload.name}/infer", process.pid)
            wrk(urls[kind][0], workload, 8, 1)  # warm-up
        for index in range(args.rounds):
            results = []
            order = list(urls)[index % len(urls) :] + list(urls)[: index % len(urls)]
            for concurrency in concurrencies:
                for kind in order:  # who goes first rotates, so no server always follows another
                    url, pid = urls[kind]
                    before = cpu_s(pid)
                    found = wrk(url, workload, concurrency, seconds)
                    cpu_us = 1e6 * (cpu_s(pid) - before) / max(found.requests_per_s * seconds, 1)
                    results.append(Result(workload.name, kind, concurrency, found.requests_per_s,
                                          found.p50_ms, found.p99_ms, found.errors,
                                          cpu_us))  # fmt: skip
            rounds.append(results)
    runs: dict[tuple[str, int], list[Result]] = defaultdict(list)
    for result in (result for results in rounds for result in results):
        runs[(result.server, result.concurrency)].append(result)
    return [median(same) for same in runs.values()], rounds


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def median(runs: list[Result]) -> Result:
    """The run with the median throughput (its latencies and CPU time come with it)."""
    return sorted(runs, key=lambda result: result.requests_per_s)[len(runs) // 2]


def report(
    results: list[Result],
    rounds: list[list[Result]],
    ceilings: dict[str, dict[int, float]],
    console: Console,
) -> dict[str, float]:
    table = Table(title=f"Serving benchmark ({os.cpu_count()} CPUs, wrk on loopback)")
    columns = ("model", "server", "conc.", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "errors")
    for column in columns:
        is_text = column in ("model", "server")
        table.add_column(column, justify="left" if is_text else "right", no_wrap=is_text)
    for model, rates in ceilings.items():
        best = max(rates, key=rates.__getitem__)
        table.add_row(model, "ORT in process, batch 1", "-", f"{rates[1]:.0f}", "", "", "", "")
        table.add_row(model, f"ORT in process, batch {best} (rows/s)", "-", f"{rates[best]:.0f}",
                      "", "", "", "")  # fmt: skip
    for r in sorted(results, key=lambda r: (r.model, r.concurrency)):
        table.add_row(r.model, r.server, str(r.concurrency), f"{r.requests_per_s:.0f}",
                      f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_us:.0f}",
                      str(r.errors))  # fmt: skip
    console.print(table)
    return ratios(rounds, ceilings, console)


def ratios(
    rounds: list[list[Result]], ceilings: dict[str, dict[int, float]], console: Console
) -> dict[str, float]:
    """The issue's figures, each the median over rounds of the figure within one round."""
    per_round: dict[str, list[float]] = defaultdict(list)
    for results in rounds:
        for name, value in round_figures(results, ceilings).items():
            per_round[name].append(value)
    figures = {name: statistics.median(values) for name, values in per_round.items()}
    table = Table(title=f"Ratios the issue asks for (median of {len(rounds)} rounds)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("rounds", justify="right")
    for name, value in figures.items():
        spread = ", ".join(f"{v:.2f}" for v in per_round[name])
        table.add_row(name, f"{value:.2f}", spread)
    console.print(table)
    return figures


def round_figures(results: list[Result], ceilings: dict[str, dict[int, float]]) -> dict[str, float]:
    by = {(r.model, r.server, r.concurrency): r for r in results}
    top = max(r.concurrency for r in results)
    figures = {}
    ferry, bare = by.get(("digits", "ferryman", top)), by.get(("digits", "bare", top))
    naive = by.get(("digits", "naive", top))
    if ferry and bare:
        figures[f"digits c{top}: ferryman / bare ASGI (target >= 0.70)"] = (
            ferry.requests_per_s / bare.requests_per_s
        )
        figures[f"digits c{top}: CPU µs/req, ferryman / bare ASGI"] = ferry.cpu_us / bare.cpu_us
    minimal = by.get(("digits", "minimal", top))
    if minimal and bare:
        figures[f"digits c{top}: minimal honest server / bare ASGI (the most any can reach)"] = (
            minimal.requests_per_s / bare.requests_per_s
        )
    if ferry and minimal:
        figures[f"digits c{top}: ferryman / minimal honest server"] = (
            ferry.requests_per_s / minimal.requests_per_s
        )
        figures[f"digits c{top}: CPU µs/req, ferryman / minimal (target <= 1.25)"] = (
            ferry.cpu_us / minimal.cpu_us
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
    for model in ("digits", "resnet18"):
        for concurrency in sorted({r.concurrency for r in results}):
            new = by.get((model, "ferryman", concurrency))
            old = by.get((model, "baseline", concurrency))
            if new and old and old.cpu_us:
                figures[f"{model} c{concurrency}: CPU µs/req, ferryman / baseline"] = (
                    new.cpu_us / old.cpu_us
                )
    one = by.get(("digits", "ferryman", 1))
    if one:
        figures["digits c1: ferryman p99 ms (target < 3)"] = one.p99_ms
    floor = by.get(("digits", "bare", 1))
    if floor:
        figures["digits c1: bare ASGI p99 ms (the floor)"] = floor.p99_ms
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median shown)")
    parser.add_argument("--quick", action="store_true", help="2 short rounds: a few minutes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--models", nargs="+", default=["digits", "resnet18"])
    parser.add_argument(
        "--baseline-src", type=Path, help="also run a replica from this src directory"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration_s = 2, 2
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    console = Console(width=max(Console().width, 110))
    console.print(f"load before: {_load()}")
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        workloads = [w for w in write_workloads(work) if w.name in args.models]
        shapes = {
            "digits": ((1, 8, 8), (1, 8, 32, 64, 128)),
            "resnet18": ((3, 224, 224), (1, 4, 8, 16)),
        }
        # The ceiling is measured before and after the servers and the better figure kept:
        # on a shared machine that makes the ratio to it conservative.
        seconds = 1 if args.quick else 2
        before = {w.name: ceiling(w.model_path, *shapes[w.name], seconds) for w in workloads}
        results, rounds = [], []
        for workload in workloads:
            medians, runs = measure_servers(workload, args, work)
            results += medians
            rounds = [a + b for a, b in zip(rounds, runs, strict=True)] if rounds else runs
        after = {w.name: ceiling(w.model_path, *shapes[w.name], seconds) for w in workloads}
        ceilings = {
            name: {b: max(rates[b], after[name][b]) for b in rates}
            for name, rates in before.items()
        }
    figures = report(results, rounds, ceilings, console)
    console.print(f"load after: {_load()} (other work on the machine skews every figure)")
    if args.json:
        document = {"cpus": os.cpu_count(), "results": [asdict(r) for r in results],
                    "rounds": [[asdict(r) for r in runs] for runs in rounds],
                    "ceilings": ceilings, "ratios": figures}  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2))


def _load() -> str:
    """The 1-minute load average against the core count, for the reader of the tables."""
    try:
        one_minute = os.getloadavg()[0]
    except OSError:
        return "unknown"
    return f"{one_minute:.1f} on {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
