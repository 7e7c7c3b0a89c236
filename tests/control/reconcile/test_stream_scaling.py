"""Autoscaling on concurrent streams (issue 17): a language-model replica's open streams are
its requests in flight, read by the control plane's own scrape, and the autoscaler asks for
one replica per ``target_in_flight`` streams.

A real replica app (a scripted engine that holds every stream after its first token) on a
loopback socket, streams held open by a real HTTP client, the control plane's
:class:`ScrapedMetrics` and :class:`FleetLoad`, and the pure ``desired_replicas``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ferryman.config import GenerationSettings, Settings
from ferryman.control.metrics.source import ScrapedMetrics
from ferryman.control.reconcile.autoscale import (
    Observation,
    ScalerState,
    ScalingPolicy,
    desired_replicas,
)
from ferryman.control.reconcile.load import FleetLoad
from ferryman.engines.generation import GenerationInfo, SamplingParams
from ferryman.runtimes.base import Replica, ReplicaSpec, ReplicaState
from ferryman.serving.metrics import ReplicaIdentity
from ferryman.serving.openai import create_generation_app
from tests.serving.conftest import serving_in_thread

SLOT = ("chat", "v1")
POLICY = ScalingPolicy(min_replicas=1, max_replicas=4, target_in_flight=1)


class HeldEngine:
    """Gives one token, then holds the stream until ``release`` is set (from any thread)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def load(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        yield "first "
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        yield "last"

    def unload(self) -> None:
        self.release.set()

    def metadata(self) -> GenerationInfo:
        return GenerationInfo("held", "held", 64)


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[tuple[str, HeldEngine]]:
    engine = HeldEngine()
    settings = Settings(data_dir=tmp_path, generation=GenerationSettings(max_streams=8))
    app = create_generation_app(settings, engine, ReplicaIdentity("lm", "1", "onnx-genai"))
    with serving_in_thread(app) as running:
        yield f"http://{running.address}", engine
        engine.release.set()


def open_stream(url: str, opened: threading.Barrier) -> int:
    """A streamed completion: wait at ``opened`` once its first event arrived, then read on."""
    body = {"model": "lm", "prompt": "hi", "max_tokens": 2, "stream": True}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/v1/completions", json=body) as answer,
    ):
        chunks = answer.iter_bytes()
        next(chunks)
        opened.wait(timeout=10)
        rest = b"".join(chunks)
        assert rest.endswith(b"data: [DONE]\n\n")
        return answer.status_code


def desired(url: str, load: FleetLoad, metrics: ScrapedMetrics, at_s: float) -> tuple[int, float]:
    load.update(metrics.read([], [url]))
    spec = ReplicaSpec(endpoint="chat", variant="v1", model="lm", version=1)
    replica = Replica(id="r1", spec=spec, state=ReplicaState.READY, url=url, started_at_s=0.0)
    in_flight = load.load(SLOT, [replica]).in_flight
    decision, _ = desired_replicas(POLICY, Observation(at_s, 1, in_flight), ScalerState())
    return decision.replicas, in_flight


def test_three_open_streams_ask_for_three_replicas(replica: tuple[str, HeldEngine]) -> None:
    url, engine = replica
    load = FleetLoad()
    with httpx.Client() as http:
        metrics = ScrapedMetrics(http, clock=lambda: 0.0)
        assert desired(url, load, metrics, 0.0) == (1, 0.0)
        opened = threading.Barrier(4)
        with ThreadPoolExecutor(3) as pool:
            streams = [pool.submit(open_stream, url, opened) for _ in range(3)]
            opened.wait(timeout=10)  # all three have their first token; none has ended
            assert desired(url, load, metrics, 1.0) == (3, 3.0)
            engine.release.set()
            assert [s.result(timeout=10) for s in streams] == [200, 200, 200]
        assert desired(url, load, metrics, 2.0)[1] == 0.0  # the streams ended: none open
        metrics.close()
