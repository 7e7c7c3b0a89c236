"""Streams of tiny-lm through the gateway against the engine called in-process (the ceiling).

    python bench/llm/run.py --data-dir DIR [--streams 1,8,32] [--tokens 64] [--rounds 2]

DIR holds a registry with tiny-lm (``ferryman train tiny-lm --data-dir DIR``; trained here
when absent). For each level of concurrency, each stream asks for ``--tokens`` tokens
(greedy); reported: output tokens/s over the level, time to first token p50/p99, and the
gateway / in-process ratio of tokens/s. Same model, same machine, one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


async def in_process(engine: GenaiEngine, streams: int, tokens: int) -> tuple[float, list[float]]:
    params = SamplingParams(max_tokens=tokens, temperature=0)

    async def one() -> tuple[int, float]:
        started, first, count = time.perf_counter(), 0.0, 0
        async for _ in engine.generate(PROMPT, params):
            count += 1
            first = first or time.perf_counter() - started
        return count, first

    started = time.perf_counter()
    done = await asyncio.gather(*(one() for _ in range(streams)))
    elapsed = time.perf_counter() - started
    return sum(c for c, _ in done) / elapsed, [f for _, f in done]


async def through(url: str, streams: int, tokens: int) -> tuple[float, list[float]]:
    body = {"model": "tiny-lm", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0,
            "stream": True}  # fmt: skip
    limits = httpx.Limits(max_connections=streams + 4)

    async def one(client: httpx.AsyncClient) -> tuple[int, float]:
        started, first, count = time.perf_counter(), 0.0, 0
        async with client.stream("POST", url, json=body) as answer:
            answer.raise_for_status()
            async for line in answer.aiter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if chunk["choices"] and chunk["choices"][0]["text"]:
                        count += 1
                        first = first or time.perf_counter() - started
        return count, first

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.perf_counter()
        done = await asyncio.gather(*(one(client) for _ in range(streams)))
        elapsed = time.perf_counter() - started
    return sum(c for c, _ in done) / elapsed, [f for _, f in done]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_stack(data_dir: Path, scratch: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    replica_port, gateway_port = _free_port(), _free_port()
    route = VariantRoute(name="v1", model="tiny-lm", version=1, weight=100,
                         backends=(f"http://127.0.0.1:{replica_port}",))  # fmt: skip
    table = RouteTable(
        generation=1, endpoints={"lm": EndpointRoute(endpoint="lm", variants=(route,))}
    )
    routes = scratch / "routes.json"
    routes.write_text(table.model_dump_json())
    env = {**os.environ, "FERRYMAN_GENERATION__MAX_STREAMS": "64"}
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
    return processes, f"http://127.0.0.1:{gateway_port}/endpoints/lm/v1/completions"


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
    processes, url = start_stack(args.data_dir, scratch)
    try:
        print("streams  where        tokens/s  ttft p50 ms  ttft p99 ms")
        for streams in [int(s) for s in args.streams.split(",")]:
            rates: dict[str, list[float]] = {"in-process": [], "gateway": []}
            for _ in range(args.rounds):  # interleaved rounds: the machine is shared
                for where, measured in rates.items():
                    if where == "in-process":
                        rate, firsts = await in_process(engine, streams, args.tokens)
                    else:
                        rate, firsts = await through(url, streams, args.tokens)
                    measured.append(rate)
                    last_firsts = firsts
                    print(f"{streams:7d}  {where:10s}  {rate:9.0f}  "
                          f"{statistics.median(last_firsts) * 1000:11.1f}  "
                          f"{percentile(last_firsts, 0.99) * 1000:11.1f}")  # fmt: skip
            ratio = statistics.median(rates["gateway"]) / statistics.median(rates["in-process"])
            print(f"{streams:7d}  gateway / in-process tokens/s: {ratio:.2f}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        engine.unload()


if __name__ == "__main__":
    asyncio.run(main())
