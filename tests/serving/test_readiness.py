"""Readiness means "answers correctly": golden requests replayed at load."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pytest

from ferryman.engines.function import FunctionEngine
from ferryman.engines.onnx import OnnxEngine
from ferryman.errors import UnsafeArtifact
from ferryman.reference import ReferenceData
from tests.serving.conftest import affine_model, golden, replica, running
from tests.serving.test_batching import SIGNATURE, body

pytestmark = pytest.mark.anyio


async def test_golden_requests_that_match_make_it_ready() -> None:
    reference = ReferenceData(golden=(golden([0, 1, 2, 3]), golden([-5, 0.5, 9, 1e-3])))
    async with running(replica(OnnxEngine(affine_model()), reference)) as client:
        assert (await client.get("/v2/models/tiny/ready")).status_code == 200


async def test_failed_warm_up_leaves_it_not_ready_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reference = ReferenceData(golden=(golden([0, 1, 2, 3]), golden([1, 1, 1, 1], scale=2.5)))
    x = np.ones((1, 4), dtype=np.float32)
    with caplog.at_level(logging.ERROR):
        async with running(replica(OnnxEngine(affine_model()), reference)) as client:
            ready = await client.get("/v2/models/tiny/ready")
            server_ready = await client.get("/v2/health/ready")
            live = await client.get("/v2/health/live")
            refused = await client.post("/v2/models/tiny/infer", json=body(x))
            metrics = (await client.get("/metrics")).text
    assert ready.status_code == 503
    reason = ready.json()["error"]
    assert "warm-up failed: golden request 2 of 2: output 'y' differs" in reason
    assert "by 0.5 at flat index 0 (tolerance 1e-05)" in reason
    assert server_ready.status_code == 503
    assert live.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert 'ferryman_model_ready{model="tiny",variant="onnx-fp32",version="3"} 0.0' in metrics
    assert "warm-up failed" in caplog.text


async def test_a_model_that_fails_to_load_is_not_ready() -> None:
    class Broken(FunctionEngine):
        def load(self) -> None:
            raise RuntimeError("out of memory")

    def identity(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"]}

    async with running(replica(Broken(SIGNATURE, identity))) as client:
        response = await client.get("/v2/models/tiny/ready")
    assert response.status_code == 503
    assert "failed to load: RuntimeError: out of memory" in response.json()["error"]


async def test_golden_with_a_missing_output_is_a_reason() -> None:
    def identity(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] * 2 + 1}

    reference = ReferenceData(golden=(golden([0, 1, 2, 3]),))
    async with running(replica(FunctionEngine(SIGNATURE, identity), reference)) as client:
        response = await client.get("/v2/health/ready")
    assert "the model gave no output 'p'" in response.json()["error"]


def test_only_onnx_bytes_become_a_runtime() -> None:
    with pytest.raises(UnsafeArtifact, match="pickle"):
        OnnxEngine(b"\x80\x04\x95" + b"\x00" * 32)
