"""What the model call's hop to the executor thread costs: this checkout against a baseline.

Until RELIABILITY F4 was closed, a model whose calls had been timed under 0.5 ms ran on the
event loop itself; now every call runs on the executor's thread. This runs replicas of a
tiny model side by side, some from other checkouts' ``src`` (say, the commit before the
fix), and measures requests per second and latency with wrk on loopback:

    git worktree add /tmp/inline <commit before the fix>
    .venv/bin/python bench/serving/hop.py --baseline inline=/tmp/inline/src

Models: ``digits`` (the digits-sized ONNX MLP of ``models.py``, ~20 µs a call) and ``tiny``
(a Python function, y = x + 1 on 4 floats, a few µs a call): the models where the hop is
the largest share of a request. Every replica of a model runs at once and the rounds
interleave them (who goes first rotates), so a burst of other load hits them alike; tables
show the median round, and the ratio to the first baseline is the median of per-round
ratios. "CPU µs/req" is the replica process's user + system time per answered request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from models import digits_mlp
from run import Result, Workload, _load, _stop, cpu_s, free_port, median, wrk

HERE = Path(__file__).parent
SOURCE = HERE.parent.parent / "src"


def serve(model: str, port: int, path: Path) -> None:
    """Run one replica in the foreground (the ``--serve`` entry of the child processes)."""
    from ferryman.config import ServingSettings, Settings  # noqa: PLC0415
    from ferryman.engines import ModelEngine  # noqa: PLC0415
    from ferryman.engines.function import FunctionEngine  # noqa: PLC0415
    from ferryman.engines.onnx import OnnxEngine  # noqa: PLC0415
    from ferryman.serving.app import create_app  # noqa: PLC0415
    from ferryman.serving.metrics import ReplicaIdentity  # noqa: PLC0415
    from ferryman.serving.server import serve as run_server  # noqa: PLC0415
    from ferryman.signature import Signature, TensorSpec  # noqa: PLC0415

    settings = Settings(serving=ServingSettings(port=port))
    runtime: ModelEngine
    if model == "digits":
        runtime = OnnxEngine(path.read_bytes(), settings.serving.intra_op_threads)
    else:
        spec = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
        signature = Signature(inputs=(spec,), outputs=(spec.model_copy(update={"name": "y"}),))
        runtime = FunctionEngine(signature, lambda inputs: {"y": inputs["x"] + 1})
    run_server(settings, create_app(settings, runtime, ReplicaIdentity(model, "1", "bench")))


def workloads(directory: Path) -> list[Workload]:
    digits = directory / "digits.onnx"
    digits.write_bytes(digits_mlp())
    pixels = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    digits_body = directory / "digits.json"
    digits_body.write_text(json.dumps({"inputs": [{"name": "pixels", "shape": [1, 1, 8, 8],
        "datatype": "FP32", "data": pixels.ravel().round(4).tolist()}]}))  # fmt: skip
    tiny_body = directory / "tiny.json"
    tiny_body.write_text(json.dumps({"inputs": [{"name": "x", "shape": [1, 4],
        "datatype": "FP32", "data": [0.5, 1.5, 2.5, 3.5]}]}))  # fmt: skip
    return [
        Workload("digits", digits, digits_body, "application/json", "", ()),
        Workload("tiny", directory / "tiny", tiny_body, "application/json", "", ()),
    ]


def measure(
    workload: Workload, sources: dict[str, Path], args: argparse.Namespace, work: Path
) -> list[list[Result]]:
    rounds: list[list[Result]] = []
    with ExitStack() as stack:
        urls: dict[str, tuple[str, int]] = {}
        for kind, source in sources.items():
            port = free_port()
            process = start_replica(workload, port, source)
            stack.callback(_stop, process)
            urls[kind] = (f"http://127.0.0.1:{port}/v2/models/{workload.name}/infer", process.pid)
            wrk(urls[kind][0], workload, 8, 1)  # warm-up
        for index in range(args.rounds):
            order = list(urls)[index % len(urls) :] + list(urls)[: index % len(urls)]
            results = []
            for concurrency in args.concurrency:
                for kind in order:
                    url, pid = urls[kind]
                    before = cpu_s(pid)
                    found = wrk(url, workload, concurrency, args.duration_s)
                    answered = max(found.requests_per_s * args.duration_s, 1)
                    cpu_us = 1e6 * (cpu_s(pid) - before) / answered
                    results.append(Result(workload.name, kind, concurrency, found.requests_per_s,
                                          found.p50_ms, found.p99_ms, found.errors,
                                          cpu_us))  # fmt: skip
            rounds.append(results)
    return rounds


def start_replica(workload: Workload, port: int, source: Path) -> subprocess.Popen[bytes]:
    """This script's ``--serve`` entry in a process of its own, with ``source`` on the path."""
    command = [sys.executable, str(Path(__file__)), "--serve", workload.name, str(port),
               str(workload.model_path)]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(source)}
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
    raise RuntimeError(f"the {workload.name} replica from {source} did not start")


def report(rounds: list[list[Result]], kinds: list[str], console: Console) -> None:
    runs: dict[tuple[str, str, int], list[Result]] = defaultdict(list)
    for result in (r for results in rounds for r in results):
        runs[(result.model, result.server, result.concurrency)].append(result)
    first = kinds[0]
    table = Table(title=f"Model call on the loop vs on the executor ({os.cpu_count()} CPUs, wrk)")
    for column in ("model", "c", "replica", "req/s", f"÷ {first}", "p50 ms", "p99 ms",
                   "CPU µs/req", "errors"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("model", "replica") else "right")
    for (model, kind, concurrency), same in runs.items():
        result = median(same)
        ratios = []
        for results in rounds:
            by_kind = {(r.model, r.server, r.concurrency): r for r in results}
            base = by_kind.get((model, first, concurrency))
            mine = by_kind.get((model, kind, concurrency))
            if base and mine and base.requests_per_s:
                ratios.append(mine.requests_per_s / base.requests_per_s)
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        table.add_row(model, str(concurrency), kind, f"{result.requests_per_s:,.0f}", ratio,
                      f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}", f"{result.cpu_us:,.0f}",
                      str(sum(r.errors for r in same)))  # fmt: skip
    console.print(table)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", action="append", default=[], metavar="NAME=SRC",
        help="also run a replica from this src (repeatable; the first is the ratios' base)",
    )  # fmt: skip
    parser.add_argument("--duration-s", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median shown)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--models", nargs="+", default=["digits", "tiny"])
    args = parser.parse_args()
    sources = dict(item.split("=", 1) for item in args.baseline)
    sources = {name: Path(path).resolve() for name, path in sources.items()}
    sources["this"] = SOURCE.resolve()
    console = Console(width=max(Console().width, 110))
    console.print(f"load before: {_load()}")
    rounds: list[list[Result]] = []
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        for workload in (w for w in workloads(work) if w.name in args.models):
            runs = measure(workload, sources, args, work)
            rounds = [a + b for a, b in zip(rounds, runs, strict=True)] if rounds else runs
    report(rounds, list(sources), console)
    console.print(f"load after: {_load()} (other work on the machine skews every figure)")


if __name__ == "__main__":
    main()
