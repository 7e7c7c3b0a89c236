"""Ferryman against the serving frameworks people use instead, side by side, on one machine.

    PYTHONPATH=src python bench/peers/run.py            # 5 s cells; --long for 10 s

Servers, each as it is usually run on 2 cores:
- Ferryman, one replica (``ferryman serve``, its defaults) and the same replica through
  ``ferryman gateway`` (the route table of a default deployment: one variant, one replica);
- FastAPI + uvicorn, 2 workers, ONNX Runtime at 1 intra-op thread each;
- PyTriton (``nvidia-pytriton``: Triton Inference Server), 2 model instances;
- MLServer, 2 parallel workers, a custom ONNX Runtime runtime;
- BentoML, 2 workers.

Models (``models.py``): a digits CNN, a GBDT on 20 tabular features, ResNet-18 at 224².
Load: ``wrk``, one thread, closed loop, batch-1 V2 JSON bodies (a Lua script posts them), at
concurrency 1, 8 and 64. Per model every server is started once, then the cells run
interleaved (every server at one concurrency before the next concurrency; the server order
reversed in each round), twice. Printed: req/s and p99 per cell (the mean of the rounds) and
the ratios Ferryman gateway / best peer and replica / best peer.

The peers live in their own virtual environments (``bench/peers/.venv-<peer>``, made here
from ``requirements/<peer>.txt``; one each because their pins conflict), never in
Ferryman's. A peer that cannot be installed or run here is reported as "not runnable here:
<reason>", and the run goes on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))
from bench.wrk import Load, run_wrk
from models import BenchModel, build

from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute

HERE = Path(__file__).parent
SERVERS_DIR = HERE / "servers"
JSON_HEADERS = {"Content-Type": "application/json"}
FERRYMAN = ("ferryman-replica", "ferryman-gateway")
PEERS = ("fastapi", "pytriton", "mlserver", "bentoml")
START_TIMEOUT_S = 180.0
console = Console(width=max(150, shutil.get_terminal_size().columns))


class NotRunnable(Exception):
    """A server that cannot be installed or started on this machine; the message says why."""


@dataclass
class Running:
    """A started server: its processes (stopped in reverse order) and inference URL."""

    name: str
    url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


@dataclass
class Cell:
    rate: float
    p99_ms: float | None
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peer_python(peer: str) -> Path:
    """The peer's own interpreter, its virtual environment made (once) from its requirements."""
    requirements = HERE / "requirements" / f"{peer}.txt"
    home = HERE / f".venv-{peer}"
    marker = home / ".requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = home / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text() == digest:
        return python
    console.print(f"[dim]installing {peer} into {home.relative_to(HERE.parent.parent)}…[/]")
    if not python.exists():
        venv.create(home, with_pip=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise NotRunnable(f"pip install failed: {_last_error(done.stderr)}")
    marker.write_text(digest)
    return python


ROOT_CAUSES = re.compile(r"((?:Attribute|Import|ModuleNotFound|OS|Runtime)Error: .*)")


def _last_error(text: str) -> str:
    """The most telling line of a log, shortened: the first root-cause error (an import, an
    attribute, the OS), else the last error or exception line, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [m.group(1) for line in lines if (m := ROOT_CAUSES.search(line))]
    if not found:
        found = [
            m.group(1)
            for line in lines
            if (m := re.search(r"(\w+(?:Error|Exception)\b:?.*)", line))
        ][-1:]
    message = found[0] if found else (lines[-1] if lines else "no output")
    return message.split("\\n")[0][:160]


def _spawn(
    command: list[str], log: Path, cwd: Path | None = None, **env: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=os.environ | env,
            start_new_session=True,  # its workers stop with it (the group is signalled)
        )  # fmt: skip


def _ferryman(model: BenchModel, port: int, work: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ferryman", "--data-dir", str(work / "ferryman-data"),
               "serve", str(model.path), "--name", "m", "--port", str(port)]  # fmt: skip
    return _spawn(command, log)


def start(name: str, model: BenchModel, work: Path) -> Running:
    """Start one server for ``model``; ready to answer, or NotRunnable."""
    port = free_port()
    log = work / "logs" / f"{name}-{model.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    base = f"http://127.0.0.1:{port}"
    running = Running(name, f"{base}/v2/models/m/infer")
    ready = f"{base}/v2/health/ready"
    env = {"BENCH_MODEL": str(model.path), "PYTHONPATH": str(SERVERS_DIR)}
    if name == "ferryman-replica":
        running.processes.append(_ferryman(model, port, work, log))
    elif name == "ferryman-gateway":
        replica_port = free_port()
        running.processes.append(_ferryman(model, replica_port, work, log))
        _wait_ready(running, f"http://127.0.0.1:{replica_port}/v2/health/ready", log)
        routes = work / f"routes-{model.name}.json"
        routes.write_text(_route_table(f"http://127.0.0.1:{replica_port}").model_dump_json())
        command = [sys.executable, "-m", "ferryman", "--data-dir", str(work / "ferryman-data"),
                   "gateway", "--port", str(port), "--routes-file", str(routes)]  # fmt: skip
        running.processes.append(_spawn(command, log))
    else:
        python = str(peer_python(name))
        if name == "fastapi":
            command = [python, str(SERVERS_DIR / "fastapi_server.py"), str(port)]
            running.processes.append(_spawn(command, log, SERVERS_DIR, **env))
        elif name == "pytriton":
            command = [python, str(SERVERS_DIR / "pytriton_server.py"), str(port),
                       str(free_port()), str(free_port())]  # fmt: skip
            # Triton's Python backend stub loads libpython by name; without this it may load
            # the system's (another patch release) under this interpreter's standard library.
            env["LD_LIBRARY_PATH"] = _libdir(python)
            running.processes.append(_spawn(command, log, SERVERS_DIR, **env))
            ready = f"{base}/v2/models/m/ready"  # the server is ready before its model
        elif name == "mlserver":
            home = _mlserver_settings(work / f"mlserver-{model.name}", port)
            command = [str(Path(python).parent / "mlserver"), "start", str(home)]
            running.processes.append(_spawn(command, log, home, **env))
            ready = f"{base}/v2/models/m/ready"
        elif name == "bentoml":
            command = [str(Path(python).parent / "bentoml"), "serve", "bentoml_service:Model",
                       "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
            running.processes.append(_spawn(command, log, SERVERS_DIR, **env))
            running.url, ready = f"{base}/infer", f"{base}/readyz"
    _wait_ready(running, ready, log)
    _check_answer(running, model)
    return running


def _libdir(python: str) -> str:
    """The directory of the interpreter's own libpython."""
    code = "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return found.stdout.strip()


def _route_table(replica: str) -> RouteTable:
    """What the control plane publishes for a default deployment: one variant, one replica."""
    variant = VariantRoute(name="v1", model="m", version=1, weight=100, backends=(replica,))
    return RouteTable(
        generation=1, endpoints={"m": EndpointRoute(endpoint="m", variants=(variant,))}
    )


def _mlserver_settings(home: Path, port: int) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                "parallel_workers": 2, "host": "127.0.0.1"}  # fmt: skip
    (home / "settings.json").write_text(json.dumps(settings))
    model = {"name": "m", "implementation": "mlserver_runtime.OnnxRuntime"}
    (home / "model-settings.json").write_text(json.dumps(model))
    return home


def _wait_ready(running: Running, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for process in running.processes:
            if process.poll() is not None:
                stop(running)
                reason = _last_error(log.read_text(errors="replace"))
                raise NotRunnable(f"exited {process.returncode}: {reason}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    stop(running)
    raise NotRunnable(
        f"not ready in {START_TIMEOUT_S:.0f} s: {_last_error(log.read_text(errors='replace'))}"
    )


def _check_answer(running: Running, model: BenchModel) -> None:
    answer = httpx.post(running.url, content=model.body(), timeout=60,
                        headers={"content-type": "application/json"})  # fmt: skip
    if answer.status_code != 200:
        stop(running)
        raise NotRunnable(f"answered {answer.status_code}: {answer.text[:160]}")


def stop(running: Running) -> None:
    for process in reversed(running.processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in reversed(running.processes):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wrk(url: str, body: bytes, concurrency: int, seconds: int) -> Cell:
    """One cell: wrk, one thread, 30 s before a request counts as timed out."""
    found = run_wrk(url, body, JSON_HEADERS, Load(seconds, concurrency, timeout_s=30))
    p99 = found.p99_ms if found.requests_per_s > 0 else None  # no answer: wrk prints 0 us
    return Cell(found.requests_per_s, p99, found.errors)


Results = dict[tuple[str, str, int], list[Cell]]


def measure(
    args: argparse.Namespace, models: list[BenchModel], work: Path
) -> tuple[Results, dict[str, str]]:
    results: Results = {}
    skipped: dict[str, str] = {}
    cells = len(models) * len(args.servers) * len(args.concurrency) * args.rounds
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("cells", total=cells)
        for model in models:
            seconds = max(args.seconds, model.min_seconds)
            body = model.body()
            (work / f"{model.name}.json").write_bytes(body)
            running: list[Running] = []
            for name in args.servers:
                if name in skipped:
                    progress.advance(task, len(args.concurrency) * args.rounds)
                    continue
                progress.update(task, description=f"{model.name}: starting {name}")
                try:
                    running.append(start(name, model, work))
                except NotRunnable as reason:
                    skipped[name] = str(reason)
                    console.print(f"[yellow]{name}: not runnable here: {reason}[/]")
                    progress.advance(task, len(args.concurrency) * args.rounds)
            try:
                for server in running:  # warm-up: caches, lazy imports, the first batches
                    wrk(server.url, body, 8, 1)
                for round_ in range(args.rounds):
                    order = running if round_ % 2 == 0 else running[::-1]
                    for concurrency in args.concurrency:
                        for server in order:
                            progress.update(
                                task, description=f"{model.name} c={concurrency}: {server.name}"
                            )
                            cell = wrk(server.url, body, concurrency, seconds)
                            results.setdefault((model.name, server.name, concurrency), []).append(
                                cell
                            )
                            progress.advance(task)
            finally:
                for server in running:
                    stop(server)
    return results, skipped


def report(
    args: argparse.Namespace, models: list[BenchModel], results: Results, skipped: dict[str, str]
) -> None:
    measured = [s for s in args.servers if s not in skipped]
    peers = [s for s in measured if s in PEERS]
    table = Table(
        title=f"req/s (p99 ms), mean of {args.rounds} interleaved rounds of {args.seconds} s "
        "cells (ResNet-18: 10 s at least); wrk -t1, batch-1 JSON"
    )
    table.add_column("model", style="bold")
    table.add_column("c", justify="right")
    for name in measured:
        table.add_column(name, justify="right")
    table.add_column("gateway / best peer", justify="right")
    table.add_column("replica / best peer", justify="right")
    for model in models:
        for concurrency in args.concurrency:
            row = [model.name, str(concurrency)]
            rates: dict[str, float] = {}
            for name in measured:
                cells = results.get((model.name, name, concurrency), [])
                if not cells:
                    row.append("—")
                    continue
                rates[name] = mean(c.rate for c in cells)
                p99s = [c.p99_ms for c in cells if c.p99_ms is not None]
                errors = sum(c.errors for c in cells)
                text = f"{rates[name]:,.1f}" if rates[name] < 100 else f"{rates[name]:,.0f}"
                text += f" ({mean(p99s):.1f})" if p99s else ""
                row.append(text + (f" [red]{errors} err[/]" if errors else ""))
            best = max((rates[p] for p in peers if p in rates), default=None)
            for name in FERRYMAN[::-1]:
                ratio = rates.get(name)
                row.append("—" if best is None or ratio is None else f"{ratio / best:.2f}x")
            table.add_row(*row)
    console.print(table)
    for name, reason in skipped.items():
        console.print(f"{name}: not runnable here: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="Length of one cell (default 5).")
    parser.add_argument("--long", action="store_true", help="10 s cells.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="digits,tabular,resnet18")
    parser.add_argument("--servers", default=",".join((*FERRYMAN, *PEERS)))
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--work", type=Path, default=HERE / ".work",
                        help="Models, bodies, logs and results (git-ignored).")  # fmt: skip
    args = parser.parse_args()
    if args.long:
        args.seconds = 10
    args.servers = [s for s in args.servers.split(",") if s]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    wanted = args.models.split(",")
    models = [m for m in build(work / "models") if m.name in wanted]
    results, skipped = measure(args, models, work)
    report(args, models, results, skipped)
    document = {
        f"{m}|{s}|{c}": [cell.__dict__ for cell in cells] for (m, s, c), cells in results.items()
    }
    (work / "results.json").write_text(
        json.dumps({"cells": document, "not_runnable": skipped}, indent=1)
    )
    console.print(f"[dim]cells and logs under {work}[/]")


if __name__ == "__main__":
    main()
