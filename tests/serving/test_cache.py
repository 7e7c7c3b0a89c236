"""The optional response cache: in-process LRU and Redis behind the same seam."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import redis

from ferryman.config import ServingSettings, Settings
from ferryman.engines.function import FunctionEngine
from ferryman.serving.app import create_app
from ferryman.serving.cache import LruCache
from ferryman.serving.metrics import ReplicaIdentity
from tests.serving.conftest import running
from tests.serving.test_batching import SIGNATURE, body

pytestmark = pytest.mark.anyio

URL = "/v2/models/tiny/infer"


class CountingModel:
    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.rows += len(inputs["x"])
        return {"y": inputs["x"] * 3}


@pytest.mark.parametrize("backend", ["lru", "redis"])
async def test_repeated_requests_are_answered_from_the_cache(backend: str) -> None:
    backends: dict[str, dict[str, Any]] = {  # ServingSettings' keyword arguments
        "lru": {"cache_entries": 16}, "redis": {"cache_redis_url": _redis_url()}
    }  # fmt: skip
    serving = backends[backend]
    model = CountingModel()
    identity = ReplicaIdentity("tiny", str(uuid.uuid4().int % 10**9), "onnx-fp32")
    app = create_app(
        Settings(serving=ServingSettings(**serving)), FunctionEngine(SIGNATURE, model), identity
    )
    x, other = np.ones((1, 4), "f4"), np.zeros((1, 4), "f4")
    async with running(app) as client:
        first = await client.post(
            f"/v2/models/tiny/versions/{identity.version}/infer", json=body(x)
        )
        again = await client.post(URL, json=body(x))
        different = await client.post(URL, json=body(other))
        metrics = (await client.get("/metrics")).text
    assert first.json()["outputs"] == again.json()["outputs"]
    assert different.json()["outputs"][0]["data"] == [0, 0, 0, 0]
    assert model.rows == 2
    assert 'result="hit",variant="onnx-fp32"' in metrics
    hits = [
        line for line in metrics.splitlines() if line.startswith("ferryman_cache_requests_total")
    ]
    assert sorted(line.rsplit(" ", 1)[1] for line in hits) == ["1.0", "2.0"]


async def test_lru_evicts_the_least_recently_used() -> None:
    cache = LruCache(max_entries=2)
    for key in ("a", "b"):
        await cache.put(key, {"y": np.array([1])})
    await cache.get("a")
    await cache.put("c", {"y": np.array([2])})
    assert await cache.get("b") is None
    assert await cache.get("a") is not None
    stored = await cache.get("c")
    assert stored is not None
    assert not stored["y"].flags.writeable
    assert len(cache) == 2


def _redis_url() -> str:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/0"
