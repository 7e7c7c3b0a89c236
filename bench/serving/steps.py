"""What each step of a V2 inference request costs, one by one: µs, or instructions.

    .venv/bin/python bench/serving/steps.py                # µs per call, best of rounds
    .venv/bin/python bench/serving/steps.py --callgrind    # instructions per call

The steps are the replica's own functions called with the digits request of ``run.py``
(64 floats in, 10 probabilities out), in the order a request meets them; the event loop's
share of a batched request (its future, its deadline, its wake-up) is timed in a running
loop. ``--callgrind`` runs the same calls under valgrind with instrumentation on for one
step at a time: the counts do not move with the load of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from inprocess import _callgrind_control, _wait_for, request_body, scope_of
from models import digits_mlp

from ferryman.config import ServingSettings, Settings
from ferryman.engines.onnx import OnnxEngine
from ferryman.protocol import codecs
from ferryman.serving.app import create_app
from ferryman.serving.edge import RequestIds
from ferryman.serving.http import v2_infer_target
from ferryman.serving.limits import HeaderLimits
from ferryman.serving.metrics import ReplicaIdentity

Step = tuple[str, Callable[[], object]]


def steps(plane: Any, body: bytes) -> list[Step]:
    """The request's steps, each a call that does that step once."""
    scope = scope_of(body)
    headers = scope["headers"]
    ids = RequestIds()
    limits = HeaderLimits(plane.settings.max_header_bytes, plane.settings.max_header_count)
    inference, binary = codecs.parse_inference_request(body, None)
    document = orjson.loads(body)
    inputs = codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)
    outputs = plane._runtime.predict(inputs)
    choices = codecs.choose_outputs(inference, plane.signature)
    described = plane.payloads.begin("0" * 32)

    def admit() -> None:
        with plane.admit():
            pass

    def parse() -> object:
        return codecs.parse_inference_request(body, None)

    def validate() -> object:
        return codecs.InferenceRequest.model_validate(document)

    def describe() -> None:
        reading = plane.classes.read(outputs) if plane.classes is not None else None
        plane.payloads.describe(described, inputs, reading)

    def respond() -> bytes:
        response, _ = codecs.build_response(("digits", "1", "r"), outputs, choices)
        return codecs.encode_response(response)

    def finish() -> None:
        payload = plane.payloads.begin("0" * 32)
        plane.metrics.count_request(200, 0.001)
        plane.payloads.finish(payload, 200, 0.001)

    return [
        ("edge: request id", ids.next),
        ("edge: header limits", lambda: limits.check(headers)),
        ("edge: route match", lambda: v2_infer_target(scope)),
        ("model name check", lambda: plane.check_model("digits", None)),
        ("admission (ready, deadline)", admit),
        ("JSON parse alone (orjson; for reference)", lambda: orjson.loads(body)),
        ("request parsed: JSON, duplicate keys, V2", parse),
        ("  of which V2 validation (pydantic)", validate),
        ("tensor decode and checks",
         lambda: codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)),
        ("outputs chosen", lambda: codecs.choose_outputs(inference, plane.signature)),
        ("model call (ONNX Runtime, batch 1)", lambda: plane._runtime.predict(inputs)),
        ("top-1 counted, payload described", describe),
        ("response built and encoded", respond),
        ("record opened+closed, metrics", finish),
    ]  # fmt: skip


LOOP_ROUNDS = 128
"""Requests per run of a loop step: a run's own cost (starting the loop) is spread over them."""


def loop_steps(plane: Any, body: bytes) -> list[Step]:
    """The batcher's part of a request, in a running loop (uvloop's, as the server's, when it
    is installed); each step's call runs ``LOOP_ROUNDS`` requests, and is reported per one."""
    try:
        import uvloop  # noqa: PLC0415 (optional, as in the server)

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    inference, binary = codecs.parse_inference_request(body, None)
    inputs = codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)
    batcher = plane._batcher

    async def alone() -> None:  # c1: each request the only one
        for _ in range(LOOP_ROUNDS):
            await batcher.submit(inputs, time.monotonic() + 10)

    async def together() -> None:  # c64-like: 32 requests at once, a task each
        for _ in range(LOOP_ROUNDS // 32):
            deadline = time.monotonic() + 10
            await asyncio.gather(*(batcher.submit(inputs, deadline) for _ in range(32)))

    async def nothing() -> None:
        pass

    async def tasks() -> None:  # what the server does anyway: a task per request
        for _ in range(LOOP_ROUNDS // 32):
            await asyncio.gather(*(nothing() for _ in range(32)))

    async def start() -> None:
        batcher.start()

    loop.run_until_complete(start())
    return [
        ("batcher, alone (c1), model call included", lambda: loop.run_until_complete(alone())),
        ("batcher, 32 at once, model call included", lambda: loop.run_until_complete(together())),
        ("  of which a task each (for reference)", lambda: loop.run_until_complete(tasks())),
    ]


def timed(call: Callable[[], object], number: int, rounds: int) -> float:
    """Best µs per call over ``rounds`` of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=rounds)) / number * 1e6


def ready_plane(directory: Path) -> Any:
    """A loaded data plane of the digits model, outside any server."""
    model = directory / "digits.onnx"
    model.write_bytes(digits_mlp())
    settings = Settings(serving=ServingSettings())
    runtime = OnnxEngine(model.read_bytes(), 0)
    plane = create_app(settings, runtime, ReplicaIdentity("digits", "1", "onnx")).state.plane
    runtime.load()
    plane.not_ready_reason = None
    return plane


def all_steps(plane: Any, body: bytes) -> list[tuple[str, Callable[[], object], int]]:
    """Every step, with the number of requests one call of it does."""
    loop_part = loop_steps(plane, body)
    loop_part[0][1]()  # the batcher's first model call is timed (on the executor)
    return [*((name, call, 1) for name, call in steps(plane, body)),
            *((name, call, LOOP_ROUNDS) for name, call in loop_part)]  # fmt: skip


def counted_run(number: int, signals: Path) -> None:
    """What ``--callgrind`` runs under valgrind: each step, counted on its own."""
    with tempfile.TemporaryDirectory() as directory:
        plane = ready_plane(Path(directory))
    body = request_body()
    from ferryman.serving import batching  # noqa: PLC0415 (see inprocess.one_run)

    batching.INLINE_BELOW_S *= 100
    calls = all_steps(plane, body)
    gc.freeze()
    for index, (_, call, requests) in enumerate(calls):
        call()
        _handshake(signals, f"ready-{index}", f"go-{index}")
        for _ in range(max(number // requests, 1)):
            call()
        _handshake(signals, f"done-{index}", f"end-{index}")


def _handshake(signals: Path, mine: str, theirs: str) -> None:
    """Say ``mine``, wait for ``theirs``: few, cheap polls, as they are counted too."""
    (signals / mine).touch()
    waited_for = str(signals / theirs)
    while not os.path.exists(waited_for):
        time.sleep(0.05)


def instructions(steps: list[tuple[str, int]], number: int, keep: Path | None) -> list[float]:
    """Instructions per request of each step, under callgrind."""
    counts = []
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={work / 'callgrind.out'}", sys.executable, __file__,
                   "--counted-run", str(work), "--number", str(number)]  # fmt: skip
        with subprocess.Popen(command, cwd=work, stderr=subprocess.PIPE, text=True) as process:
            for index, (_, requests) in enumerate(steps):
                _wait_for(work / f"ready-{index}", process)
                _callgrind_control("--instr=on", process.pid, work)
                _callgrind_control("--zero", process.pid, work)
                (work / f"go-{index}").touch()
                _wait_for(work / f"done-{index}", process)
                _callgrind_control("--dump", process.pid, work)  # before off, which drops them
                _callgrind_control("--instr=off", process.pid, work)
                done = max(number // requests, 1) * requests
                counts.append(_last_dump_total(work, keep, index) / done)
                (work / f"end-{index}").touch()
            process.communicate(timeout=600)
    return counts


def _last_dump_total(work: Path, keep: Path | None, index: int) -> int:
    dumps = sorted(work.glob("callgrind.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    text = dumps[-1].read_text()
    if keep is not None:  # for callgrind_annotate
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"callgrind.step{index}.out").write_text(text)
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no totals in {dumps[-1].name}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="instructions per call")
    parser.add_argument("--keep", type=Path, help="with --callgrind: keep its files here")
    parser.add_argument("--counted-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counted_run:
        counted_run(args.number, args.counted_run)
        return
    with tempfile.TemporaryDirectory() as directory:
        plane = ready_plane(Path(directory))
    calls = all_steps(plane, request_body())
    print(f"load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.callgrind:
        steps_run = [(name, requests) for name, _, requests in calls]
        figures = instructions(steps_run, min(args.number, 2000), args.keep)
        unit = "instructions"
    else:
        gc.freeze()
        figures = [timed(call, max(args.number // requests, 1), args.rounds) / requests
                   for _, call, requests in calls]  # fmt: skip
        unit = "µs"
    for (name, _, _), figure in zip(calls, figures, strict=True):
        print(f"{name:44} {figure:>10,.2f} {unit}")


if __name__ == "__main__":
    main()
