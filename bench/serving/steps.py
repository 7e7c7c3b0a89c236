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

sys.path.insert(0, str(Path(__file__).parent))
from inprocess import _callgrind_control, _wait_for, request_body, scope_of
from models import digits_mlp

from ferryman.config import ServingSettings, Settings
from ferryman.protocol import codecs
from ferryman.runtimes.onnx import OnnxRuntime
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
    document = codecs.parse_json(body)
    inputs = codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)
    outputs = plane._runtime.predict(inputs)
    choices = codecs.choose_outputs(inference, plane.signature)
    described = plane.payloads.begin("0" * 32)

    def admit() -> None:
        with plane.admit():
            pass

    def describe() -> None:
        plane.payloads.describe(described, inputs, plane._counted(outputs))

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
        ("JSON parse, duplicate keys", lambda: codecs.parse_json(body)),
        ("V2 request validation", lambda: codecs.InferenceRequest.model_validate(document)),
        ("tensor decode and checks",
         lambda: codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)),
        ("outputs chosen", lambda: codecs.choose_outputs(inference, plane.signature)),
        ("model call (ONNX Runtime, batch 1)", lambda: plane._runtime.predict(inputs)),
        ("top-1 counted, payload described", describe),
        ("response built and encoded", respond),
        ("record opened+closed, metrics", finish),
    ]  # fmt: skip


def loop_steps(plane: Any, body: bytes) -> list[Step]:
    """The event loop's part of a request, each step run inside a running loop."""
    loop = asyncio.new_event_loop()
    inference, binary = codecs.parse_inference_request(body, None)
    inputs = codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)

    def in_loop(make: Callable[[], Any]) -> Callable[[], object]:
        return lambda: loop.run_until_complete(make())

    async def nothing() -> None:
        pass

    async def queued_alone() -> None:  # submit, the batcher's wake-up, the answer
        await plane._batcher.submit(inputs, time.monotonic() + 10)

    async def start() -> None:
        plane._batcher.start()

    loop.run_until_complete(start())
    return [
        ("loop: a task round (for reference)", in_loop(nothing)),
        ("batched request, alone (c1), + a task", in_loop(queued_alone)),
    ]


def timed(call: Callable[[], object], number: int, rounds: int) -> float:
    """Best µs per call over ``rounds`` of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=rounds)) / number * 1e6


def ready_plane(directory: Path) -> Any:
    """A loaded data plane of the digits model, outside any server."""
    model = directory / "digits.onnx"
    model.write_bytes(digits_mlp())
    settings = Settings(serving=ServingSettings())
    runtime = OnnxRuntime(model.read_bytes(), 0)
    plane = create_app(settings, runtime, ReplicaIdentity("digits", "1", "onnx")).state.plane
    runtime.load()
    plane.not_ready_reason = None
    return plane


def all_steps(plane: Any, body: bytes) -> list[Step]:
    loop_part = loop_steps(plane, body)
    loop_part[1][1]()  # the batcher starts in that loop, and its first call is timed
    return [*steps(plane, body), *loop_part]


def counted_run(number: int, signals: Path) -> None:
    """What ``--callgrind`` runs under valgrind: each step, counted on its own."""
    with tempfile.TemporaryDirectory() as directory:
        plane = ready_plane(Path(directory))
    body = request_body()
    from ferryman.serving import batching  # noqa: PLC0415 (see inprocess.one_run)

    batching.INLINE_BELOW_S *= 100
    calls = all_steps(plane, body)
    gc.freeze()
    for index, (_, call) in enumerate(calls):
        call()
        _handshake(signals, f"ready-{index}", f"go-{index}")
        for _ in range(number):
            call()
        _handshake(signals, f"done-{index}", f"end-{index}")


def _handshake(signals: Path, mine: str, theirs: str) -> None:
    """Say ``mine``, wait for ``theirs``: few, cheap polls, as they are counted too."""
    (signals / mine).touch()
    waited_for = str(signals / theirs)
    while not os.path.exists(waited_for):
        time.sleep(0.05)


def instructions(names: list[str], number: int, keep: Path | None) -> list[float]:
    """Instructions per call of each step, under callgrind."""
    counts = []
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={work / 'callgrind.out'}", sys.executable, __file__,
                   "--counted-run", str(work), "--number", str(number)]  # fmt: skip
        with subprocess.Popen(command, cwd=work, stderr=subprocess.PIPE, text=True) as process:
            for index in range(len(names)):
                _wait_for(work / f"ready-{index}", process)
                _callgrind_control("--instr=on", process.pid, work)
                _callgrind_control("--zero", process.pid, work)
                (work / f"go-{index}").touch()
                _wait_for(work / f"done-{index}", process)
                _callgrind_control("--dump", process.pid, work)  # before off, which drops them
                _callgrind_control("--instr=off", process.pid, work)
                counts.append(_last_dump_total(work, keep, index) / number)
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
    names = [name for name, _ in calls]
    print(f"load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.callgrind:
        figures = instructions(names, min(args.number, 2000), args.keep)
        unit = "instructions"
    else:
        gc.freeze()
        figures = [timed(call, args.number, args.rounds) for _, call in calls]
        unit = "µs"
    for name, figure in zip(names, figures, strict=True):
        print(f"{name:42} {figure:>10,.1f} {unit}")


if __name__ == "__main__":
    main()
