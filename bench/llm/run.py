"""Streams of tiny-lm through the gateway against the engine called in-process (the ceiling).

    python bench/llm/run.py --data-dir DIR [--streams 1,8,32] [--tokens 64] [--rounds 2]
        [--repeat 4] [--direct]
        [--before-src SRC [--before-data-dir DIR2]]

DIR holds a registry with tiny-lm (``ferryman train tiny-lm --data-dir DIR``; trained here
when absent). For each level of concurrency, each stream asks for ``--tokens`` tokens
(greedy), ``--repeat`` times in a row; reported: output tokens/s over the level, time to
first token p50/p99, and the gateway / in-process ratio of tokens/s (medians of the
interleaved rounds). Same model, same machine, one run. ``--direct`` adds a row of the same
streams sent to the replica itself, not through the gateway: what the gateway's hop costs,
apart from the replica's HTTP and the client.

``--before-src`` names the ``src`` folder of another checkout (an earlier commit): a second
replica and gateway run from it, measured in the same interleaved rounds, so a change's
"before" and "after" come from one run (``--before-data-dir``: a registry its schema reads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import httpx

from ferryman.artifacts import LocalArtifactStore
from ferryman.artifacts.bundle import unpack_bundle
from ferryman.config import load_settings
from ferryman.engines.genai import GenaiEngine
from ferryman.engines.generation import SamplingParams
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.registry import Registry

FERRYMAN = str(Path(sys.executable).parent / "ferryman")
PROMPT = "The assert statement"


@dataclass
class Measured:
    """One level's run: tokens, how long, each generation's TTFT, CPU seconds by process."""

    tokens: int
    elapsed_s: float
    firsts: list[float]
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.tokens / self.elapsed_s


async def in_process(engine: GenaiEngine, streams: int, tokens: int, repeat: int) -> Measured:
    params = SamplingParams(max_tokens=tokens, temperature=0)

    async def one() -> tuple[int, float]:
        started, first, count = time.perf_counter(), 0.0, 0
        async for _ in engine.generate(PROMPT, params):
            count += 1
            first = first or time.perf_counter() - started
        return count, first

    return await _streams(one, streams, repeat)


async def _streams(
    one: Callable[[], Awaitable[tuple[int, float]]], streams: int, repeat: int
) -> Measured:
    """``streams`` at once, each ``repeat`` generations in a row; this process's CPU (the
    client's, or the engine's when in-process) as ``cpu_s["here"]``."""

    async def stream() -> list[tuple[int, float]]:
        return [await one() for _ in range(repeat)]

    cpu, started = time.process_time(), time.perf_counter()
    done = [d for each in await asyncio.gather(*(stream() for _ in range(streams))) for d in each]
    elapsed = time.perf_counter() - started
    return Measured(sum(c for c, _ in done), elapsed, [f for _, f in done],
                    {"here": time.process_time() - cpu})  # fmt: skip


async def through(url: str, streams: int, tokens: int, repeat: int) -> Measured:
    """``streams`` keep-alive connections to ``url``, each streaming ``repeat`` completions in
    a row, read by :class:`LeanStream`."""
    parts = urlsplit(url)
    body = json.dumps({"model": "tiny-lm", "prompt": PROMPT, "max_tokens": tokens,
                       "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()  # fmt: skip
    request = (f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
               f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
               ).encode() + body  # fmt: skip
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one() -> tuple[int, float]:
        if not connections:
            connections.append(await asyncio.open_connection(parts.hostname, parts.port))
        reader, writer = connections.pop()
        try:
            return await LeanStream().read(reader, writer, request)
        finally:
            connections.append((reader, writer))

    try:
        return await _streams(one, streams, repeat)
    finally:
        for _, writer in connections:
            writer.close()


class LeanStream:
    """One streamed completion read the way a load generator reads it: the HTTP framing by
    httptools (C), the first token found by one regex on the first pieces, and the count
    from the closing ``usage`` event, the only JSON parsed. A client that parsed every
    event (httpx + ``json.loads`` per token) spent more CPU per token than the engine, on
    the cores the replica and gateway share: it measured the client, not the path."""

    _TEXT = re.compile(rb'"text":"[^"]')

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._first_at = 0.0
        self._is_complete = False

    def on_body(self, body: bytes) -> None:
        if not self._first_at and self._TEXT.search(body):
            self._first_at = time.perf_counter()
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        self._is_complete = True

    async def read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, float]:
        started = time.perf_counter()
        parser = httptools.HttpResponseParser(self)
        writer.write(request)
        while not self._is_complete:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the stream")
            parser.feed_data(data)
        if parser.get_status_code() != 200:
            raise RuntimeError(f"{parser.get_status_code()}: {b''.join(self._pieces)[:200]!r}")
        events = b"".join(self._pieces).split(b"\n\n")
        usage = json.loads(next(e for e in reversed(events) if b'"usage"' in e)[6:])["usage"]
        return int(usage["completion_tokens"]), self._first_at - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Stack:
    """A replica and a gateway in processes of their own."""

    replica: subprocess.Popen[bytes]
    gateway: subprocess.Popen[bytes]
    url: str
    direct: str
    """The replica's own completions URL (the gateway left out)."""

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds each has used (user + system, from /proc; empty where there is none)."""
        found = {}
        for role, process in (("replica", self.replica), ("gateway", self.gateway)):
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[role] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return found

    async def measure(
        self, streams: int, tokens: int, repeat: int, *, is_direct: bool = False
    ) -> Measured:
        before = self.cpu_s()
        measured = await through(self.direct if is_direct else self.url, streams, tokens, repeat)
        after = self.cpu_s()
        measured.cpu_s.update({role: after[role] - before[role] for role in after})
        return measured


def start_stack(data_dir: Path, scratch: Path, src: Path | None = None) -> Stack:
    replica_port, gateway_port = _free_port(), _free_port()
    route = VariantRoute(name="v1", model="tiny-lm", version=1, weight=100,
                         backends=(f"http://127.0.0.1:{replica_port}",))  # fmt: skip
    table = RouteTable(
        generation=1, endpoints={"lm": EndpointRoute(endpoint="lm", variants=(route,))}
    )
    routes = scratch / f"routes-{gateway_port}.json"
    routes.write_text(table.model_dump_json())
    env = {**os.environ, "FERRYMAN_GENERATION__MAX_STREAMS": "64"}
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    data = ["--data-dir", str(data_dir)]
    commands = [
        [FERRYMAN, "serve", "tiny-lm:1", "--port", str(replica_port), *data],
        [FERRYMAN, "gateway", "--port", str(gateway_port), "--routes-file", str(routes), *data],
    ]
    processes = [subprocess.Popen(command, env=env) for command in commands]
    for url in (f"http://127.0.0.1:{replica_port}/v2/health/ready",
                f"http://127.0.0.1:{gateway_port}/-/healthz"):  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    url = f"http://127.0.0.1:{gateway_port}/endpoints/lm/v1/completions"
    return Stack(processes[0], processes[1], url, f"http://127.0.0.1:{replica_port}/v1/completions")


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--streams", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=4, help="generations in a row per stream")
    parser.add_argument("--direct", action="store_true", help="also straight to the replica")
    parser.add_argument("--before-src", type=Path, help="src folder of the code to compare")
    parser.add_argument("--before-data-dir", type=Path, help="its data dir [--data-dir]")
    args = parser.parse_args()
    if not (args.data_dir / "registry.db").exists():
        subprocess.run([FERRYMAN, "train", "tiny-lm", "--data-dir", str(args.data_dir)], check=True)
    registry = Registry.open(load_settings(data_dir=args.data_dir))
    version = registry.get_version("tiny-lm", 1)
    data = LocalArtifactStore(args.data_dir / "artifacts").read(version.digest)
    registry.close()
    scratch = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    engine = GenaiEngine(unpack_bundle(data, version.digest, scratch / "bundles"), "tiny-lm")
    engine.load()
    stacks = {"gateway": start_stack(args.data_dir, scratch)}
    if args.before_src is not None:
        before_data = args.before_data_dir or args.data_dir
        stacks["before"] = start_stack(before_data, scratch, args.before_src)
    try:
        for streams in [int(s) for s in args.streams.split(",")]:
            await _level(engine, stacks, streams, args)
    finally:
        processes = [p for stack in stacks.values() for p in (stack.replica, stack.gateway)]
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        engine.unload()


async def _level(
    engine: GenaiEngine, stacks: dict[str, Stack], streams: int, args: argparse.Namespace
) -> None:
    """Interleaved rounds of one level (the machine is shared); medians, and CPU per token
    of each process (less sensitive to the machine's load than tokens/s)."""
    runs: dict[str, list[Measured]] = {"in-process": [], **{where: [] for where in stacks}}
    if args.direct:
        runs["direct"] = []
    level = (streams, args.tokens, args.repeat)
    for _ in range(args.rounds):
        for where, measured in runs.items():
            if where == "in-process":
                measured.append(await in_process(engine, *level))
            elif where == "direct":
                measured.append(await stacks["gateway"].measure(*level, is_direct=True))
            else:
                measured.append(await stacks[where].measure(*level))
    print(f"\n{streams} streams: medians of {args.rounds} rounds")
    print("where        tokens/s  ratio  ttft p50 ms  ttft p99 ms   CPU µs/token: "
          "replica  gateway  client/engine")  # fmt: skip
    ceiling = statistics.median(m.rate for m in runs["in-process"])
    for where, measured in runs.items():
        rate = statistics.median(m.rate for m in measured)
        firsts = [f for m in measured for f in m.firsts]
        cpu = [_cpu_per_token(measured, role) for role in ("replica", "gateway", "here")]
        print(f"{where:10s}  {rate:9.0f}  {rate / ceiling:5.2f}  "
              f"{statistics.median(firsts) * 1000:11.1f}  {percentile(firsts, 0.99) * 1000:11.1f}"
              f"  {cpu[0]:>21s}  {cpu[1]:>7s}  {cpu[2]:>13s}")  # fmt: skip


def _cpu_per_token(measured: list[Measured], role: str) -> str:
    """The median over rounds of a process's CPU µs per token ("-": not measured)."""
    spent = [m.cpu_s[role] / m.tokens * 1e6 for m in measured if role in m.cpu_s and m.tokens]
    return f"{statistics.median(spent):.0f}" if len(spent) == len(measured) else "-"


if __name__ == "__main__":
    asyncio.run(main())
