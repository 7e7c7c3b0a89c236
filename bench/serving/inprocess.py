"""The replica's app in process, without sockets: CPU per request, a profile, instruction counts.

    .venv/bin/python bench/serving/inprocess.py                  # µs per request, c1 and c64
    .venv/bin/python bench/serving/inprocess.py --profile        # + cProfile, top functions
    .venv/bin/python bench/serving/inprocess.py --callgrind      # instructions per request

It drives the ASGI apps directly (the scope, receive and send that uvicorn would hand them)
with the V2 digits request of ``run.py``: the Ferryman replica (``create_app``, edge and
all) and the minimal honest server of ``servers.py``, on uvloop, after ``gc.freeze`` as the
server does. ``--concurrency`` requests are in flight at once (64 lets the batcher batch).

Wall time per request on a shared machine moves with the load; ``--callgrind`` runs the
same loop under valgrind and counts the instructions the requests execute (instrumentation
is on only while they run), a figure that does not depend on what else the machine does.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from models import digits_mlp
from servers import minimal_app

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
PATH = "/v2/models/digits/infer"
VALGRIND_SLOWDOWN = 100


def request_body() -> bytes:
    pixels = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    return json.dumps({"inputs": [{"name": "pixels", "shape": [1, 1, 8, 8], "datatype": "FP32",
                       "data": pixels.ravel().round(4).tolist()}]}).encode()  # fmt: skip


def scope_of(body: bytes) -> dict[str, Any]:
    """What uvicorn (httptools) hands an app for wrk's POST."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "scheme": "http", "method": "POST", "root_path": "", "path": PATH,
        "raw_path": PATH.encode(), "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"content-length", b"%d" % len(body)),
                    (b"content-type", b"application/json")],
        "state": {},
    }  # fmt: skip


async def one(app: App, body: bytes) -> int:
    status = 0
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(reply: dict[str, Any]) -> None:
        nonlocal status
        if reply["type"] == "http.response.start":
            status = reply["status"]

    await app(scope_of(body), receive, send)
    return status


async def drive(app: App, body: bytes, requests: int, concurrency: int) -> None:
    """``requests`` requests, ``concurrency`` at a time; every answer must be 200."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await one(app, body)
            if status != 200:
                raise RuntimeError(f"status {status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def with_app(kind: str, model: Path, run: Callable[[App], Awaitable[None]]) -> None:
    if kind == "minimal":
        await run(minimal_app(model))
        return
    from ferryman.config import ServingSettings, Settings  # noqa: PLC0415 (the tree under test)
    from ferryman.engines.onnx import OnnxEngine  # noqa: PLC0415
    from ferryman.serving.app import create_app  # noqa: PLC0415
    from ferryman.serving.metrics import ReplicaIdentity  # noqa: PLC0415

    settings = Settings(serving=ServingSettings())  # what `ferryman serve` runs with
    runtime = OnnxEngine(model.read_bytes(), settings.serving.intra_op_threads)
    app = create_app(settings, runtime, ReplicaIdentity("digits", "1", "onnx"))
    async with app.router.lifespan_context(app):
        await run(app)


def measure(kind: str, model: Path, args: argparse.Namespace) -> dict[int, float]:
    """CPU µs per request at each concurrency (best of ``--repeat`` runs)."""
    body = request_body()
    results: dict[int, float] = {}

    async def run(app: App) -> None:
        await drive(app, body, 500, 8)  # warm-up: the model's first calls, caches
        gc.freeze()
        for concurrency in args.concurrency:
            best = float("inf")
            for _ in range(args.repeat):
                started = time.process_time()
                await drive(app, body, args.requests, concurrency)
                best = min(best, (time.process_time() - started) / args.requests * 1e6)
            results[concurrency] = best
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(app, body, args.requests, max(args.concurrency))
            profiler.disable()
            stats = pstats.Stats(profiler).sort_stats("tottime")
            print(f"\n{kind}: top functions by own time, c{max(args.concurrency)}")
            stats.print_stats(args.profile_lines)

    _loop_run(with_app(kind, model, run))
    return results


def _loop_run(coroutine: Awaitable[None]) -> None:
    try:
        import uvloop  # noqa: PLC0415 (as the server: uvloop when installed)

        uvloop.run(coroutine)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coroutine)  # type: ignore[arg-type]


def instructions(
    kind: str, model: Path, requests: int, concurrency: int, keep: Path | None = None
) -> int:
    """Instructions executed by ``requests`` requests, counted by callgrind.

    Valgrind starts with instrumentation off (imports and the model's load run several
    times faster so), the run says when its warm-up is done, ``callgrind_control`` turns
    instrumentation on, the requests run, and it is turned off again before the exit.
    """
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={work / 'callgrind.out'}",
                   sys.executable, __file__, "--one", kind, "--model", str(model),
                   "--requests", str(requests), "--concurrency", str(concurrency),
                   "--signals", str(work)]  # fmt: skip
        with subprocess.Popen(command, cwd=work, stderr=subprocess.PIPE, text=True) as process:
            _wait_for(work / "ready", process)
            _callgrind_control("--instr=on", process.pid, work)
            (work / "go").touch()
            _wait_for(work / "done", process)
            _callgrind_control("--instr=off", process.pid, work)
            (work / "end").touch()
            _, stderr = process.communicate(timeout=600)
        if keep is not None:  # for callgrind_annotate
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "callgrind.out", keep / f"callgrind.{kind}.c{concurrency}.out")
        match = re.search(r"Collected : (\d+)", stderr)
        if process.returncode != 0 or match is None:
            raise RuntimeError(stderr[-2000:])
        return int(match.group(1))


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 900
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the run under valgrind stopped before {path.name}")
        time.sleep(0.05)


def _callgrind_control(option: str, pid: int, work: Path) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], cwd=work, check=True,
                   capture_output=True, timeout=300)  # fmt: skip


def one_run(kind: str, model: Path, requests: int, concurrency: int, signals: Path) -> None:
    """What ``--callgrind`` runs under valgrind: warm-up, freeze, then the counted loop."""
    body = request_body()
    if kind == "ferryman":
        # Under valgrind every model call takes ~50 times as long, and the batcher would
        # move this fast model off the event loop, as it never does at native speed.
        from ferryman.serving import batching  # noqa: PLC0415 (the tree under test)

        batching.INLINE_BELOW_S *= VALGRIND_SLOWDOWN

    async def run(app: App) -> None:
        await drive(app, body, 200, 8)
        gc.freeze()
        await _signal(signals, "ready", "go")
        await drive(app, body, requests, concurrency)
        await _signal(signals, "done", "end")

    _loop_run(with_app(kind, model, run))


async def _signal(signals: Path, mine: str, theirs: str) -> None:
    """Say ``mine`` and wait (running, so valgrind reads its commands) until ``theirs``."""
    (signals / mine).touch()
    waited_for = str(signals / theirs)
    while not os.path.exists(waited_for):  # few, cheap polls: they are counted too
        await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best shown)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--servers", nargs="+", default=["minimal", "ferryman"])
    parser.add_argument("--profile", action="store_true", help="cProfile the top concurrency")
    parser.add_argument("--profile-lines", type=int, default=40)
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--keep", type=Path, help="with --callgrind: keep its files here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--signals", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(args.one, args.model, args.requests, args.concurrency[0], args.signals)
        return
    with tempfile.TemporaryDirectory() as directory:
        model = Path(directory) / "digits.onnx"
        model.write_bytes(digits_mlp())
        print(f"load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if args.callgrind:
            for kind in args.servers:
                for concurrency in args.concurrency:
                    count = instructions(kind, model, args.requests, concurrency, args.keep)
                    per = count / args.requests
                    print(f"{kind:10} c{concurrency:<3} {per:>10,.0f} instructions/request")
            return
        for kind in args.servers:
            for concurrency, cpu_us in measure(kind, model, args).items():
                print(f"{kind:10} c{concurrency:<3} {cpu_us:7.1f} CPU µs/request")


if __name__ == "__main__":
    main()
