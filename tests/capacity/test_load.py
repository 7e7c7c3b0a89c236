"""The open-loop generator against a real replica, and the rule that says a rate is carried."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from ferryman.capacity.load import is_carried, open_loop, why_not_carried
from ferryman.engines.onnx import OnnxEngine
from ferryman.registry import LoadStep
from tests.serving.conftest import AFFINE_BODY, affine_model, replica, serving_in_thread

GOOD = json.dumps(AFFINE_BODY).encode()
WRONG_SHAPE = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
).encode()


def step(**changes: object) -> LoadStep:
    values: dict[str, object] = {
        "target_qps": 100.0,
        "achieved_qps": 100.0,
        "sent": 200,
        "errors": 0,
        "p50_ms": 5.0,
        "p99_ms": 20.0,
    }
    return LoadStep.model_validate(values | changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, ""),
        ({"errors": 1}, "1 of 200 requests failed at 100 qps"),
        ({"achieved_qps": 98.9}, "achieved 98.9 of 100 qps (< 99%)"),
        ({"achieved_qps": 99.0}, ""),
        ({"p99_ms": 50.5}, "p99 50.5 ms > 50 ms at 100 qps"),
        ({"p99_ms": None}, "p99 0.0 ms > 50 ms at 100 qps"),
        (
            {"errors": 3, "send_lag_ms": 400},
            "3 of 200 requests failed at 100 qps (the load "
            "generator fell 400 ms behind: it may be the limit)",
        ),
    ],
)
def test_a_rate_is_carried_only_without_errors_at_99_percent_and_within_p99(
    changes: dict[str, object], reason: str
) -> None:
    measured = step(**changes)
    assert is_carried(measured, 50.0) is (reason == "")
    assert why_not_carried(measured, 50.0) == reason


def test_open_loop_sends_the_scheduled_count_and_counts_refusals() -> None:
    app = replica(OnnxEngine(affine_model()))
    with serving_in_thread(app) as server:

        async def load(body: bytes) -> LoadStep:
            async with httpx.AsyncClient(base_url=f"http://{server.address}") as client:
                return await open_loop(
                    client, "/v2/models/tiny/infer", [body], 20.0, duration_s=1.0
                )

        good = asyncio.run(load(GOOD))
        refused = asyncio.run(load(WRONG_SHAPE))
    assert (good.sent, good.errors) == (20, 0)
    assert good.p50_ms is not None
    assert good.p99_ms is not None
    assert good.p50_ms <= good.p99_ms
    assert (refused.sent, refused.errors, refused.p99_ms) == (20, 20, None)
    assert refused.achieved_qps == 0
