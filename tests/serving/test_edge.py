"""The edge's hot path for V2 inference: the same answers as the Starlette route, on the wire
too; clients that leave; request ids; the loop metrics; and no work for the cyclic collector."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import Receive, Scope, Send

from ferryman.engines.function import FunctionEngine
from ferryman.engines.onnx import OnnxEngine
from ferryman.serving.classes import Reading
from ferryman.serving.edge import RequestIds
from ferryman.serving.payloads import PayloadLog, PayloadPolicy
from ferryman.signature import Signature, TensorSpec
from tests.serving.conftest import affine_model, replica, running, serving_in_thread
from tests.serving.test_bad_input import CORPUS, tensor
from tests.serving.test_batching import SIGNATURE

pytestmark = pytest.mark.anyio

URL = "/v2/models/tiny/infer"


async def test_the_hot_path_and_the_starlette_route_answer_the_bad_corpus_alike() -> None:
    app = replica(OnnxEngine(affine_model()), max_body_bytes=1024 * 1024)
    routed = ExceptionMiddleware(app.router, handlers=app.exception_handlers)

    async def route_only(scope: Scope, receive: Receive, send: Send) -> None:
        await routed({**scope, "app": app}, receive, send)  # the app without its edge

    async with running(app) as edge:
        transport = httpx.ASGITransport(app=route_only)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8080"
        ) as route:
            for case, body, message in CORPUS:
                fast, slow = await edge.post(URL, content=body), await route.post(URL, content=body)
                assert (fast.status_code, fast.content) == (slow.status_code, slow.content), case
                assert fast.status_code == 400, case
                assert message in fast.json()["error"], case
            fast, slow = (
                await edge.post(URL, content=tensor()),
                await route.post(URL, content=tensor()),
            )
    assert (
        fast.json()["outputs"]
        == slow.json()["outputs"]
        == [
            {"name": "y", "datatype": "FP32", "shape": [1, 4], "data": [3, 5, 7, 9]},
            {
                "name": "p",
                "datatype": "FP32",
                "shape": [1, 4],
                "data": slow.json()["outputs"][1]["data"],
            },
        ]
    )


def test_the_bad_corpus_gets_the_same_4xx_through_uvicorn() -> None:
    app = replica(OnnxEngine(affine_model()), max_body_bytes=1024 * 1024)
    with serving_in_thread(app) as live, httpx.Client(base_url=f"http://{live.address}") as http:
        for case, body, message in CORPUS:
            response = http.post(URL, content=body)
            assert response.status_code == 400, case
            assert message in response.json()["error"], case
            assert response.headers["ferryman-model-version"] == "3"
        good = http.post(URL, content=tensor())
    assert good.status_code == 200
    assert good.json()["outputs"][0]["data"] == [3, 5, 7, 9]


async def test_a_client_that_leaves_before_its_body_gets_no_answer_and_a_499() -> None:
    app = replica(OnnxEngine(affine_model()))
    async with running(app) as http:
        sent: list[Mapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": URL, "query_string": b"",
                 "headers": [(b"host", b"127.0.0.1")]}  # fmt: skip
        await app(scope, receive, send)
        text = (await http.get("/metrics")).text
        records = (await http.get("/ferryman/v1/payloads")).json()["records"]
    assert sent == []
    assert 'ferryman_requests_total{code="499"' in text
    assert [record["status"] for record in records] == [499]


async def test_a_bug_behind_the_edge_is_a_json_500_and_the_replica_serves_on() -> None:
    text = TensorSpec(name="y", datatype="BYTES", shape=(-1,))
    signature = Signature(inputs=SIGNATURE.inputs, outputs=(text,))

    def model(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": np.array([b"\xff"] * len(inputs["x"]), dtype=object)}  # not JSON-able

    async with running(replica(FunctionEngine(signature, model))) as http:
        broken = await http.post("/v1/models/tiny:predict", json={"instances": [[1, 2, 3, 4]]})
        after = await http.post(URL, content=tensor())
    assert broken.status_code == 500
    assert broken.json() == {"error": "internal error; see the log"}
    assert broken.headers["ferryman-model-version"] == "3"
    assert after.status_code == 400  # its bytes are not text: said, not crashed
    assert "binary_data" in after.json()["error"]


def test_request_ids_are_32_hex_digits_and_unique() -> None:
    ids, other = RequestIds(), RequestIds()
    made = [ids.next() for _ in range(10_000)] + [other.next()]
    assert len(set(made)) == len(made)
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in made)


async def test_metrics_are_cumulative_prometheus_families() -> None:
    app = replica(OnnxEngine(affine_model()))
    async with running(app) as http:
        for _ in range(3):
            await http.post(URL, content=tensor())
        await http.post(URL, content=tensor(shape=[1, 5]))
        text = (await http.get("/metrics")).text
    samples = {
        (sample.name, sample.labels.get("code"), sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("ferryman_requests_total", "200", None)] == 3
    assert samples[("ferryman_requests_total", "400", None)] == 1
    assert samples[("ferryman_request_duration_seconds_count", None, None)] == 4
    assert samples[("ferryman_request_duration_seconds_bucket", None, "+Inf")] == 4
    assert samples[("ferryman_request_duration_seconds_bucket", None, "10.0")] == 4
    assert samples[("ferryman_batch_size_count", None, None)] == 3
    assert samples[("ferryman_in_flight_requests", None, None)] == 0


async def test_a_fast_model_never_runs_on_the_event_loop() -> None:
    """RELIABILITY F4: a call on the loop cannot be stopped, so even a model seen to be fast
    runs on the executor's thread (it once ran on the loop after its first timed call)."""
    threads: list[int] = []

    def model(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        threads.append(threading.get_ident())
        return {"y": inputs["x"] + 1}

    app = replica(FunctionEngine(SIGNATURE, model))
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]})  # fmt: skip
    async with running(app) as http:
        answers = [await http.post(URL, content=body) for _ in range(5)]
    assert {answer.status_code for answer in answers} == {200}
    assert len(threads) == 5
    assert threading.get_ident() not in threads  # every call on the model's executor


def test_a_full_payload_ring_gives_the_cyclic_collector_nothing_to_walk() -> None:
    log = PayloadLog(PayloadPolicy(capacity=2_000, input_sample_rate=1.0))
    inputs = {"x": np.ones((1, 64), np.float32)}
    gc.collect()
    before = len(gc.get_objects())
    for index in range(2_000):
        payload = log.begin(f"r{index}")
        log.describe(payload, inputs, Reading([str(index % 10)], [index % 10], None))
        log.finish(payload, 200, 0.001)
    gc.collect()
    assert len(gc.get_objects()) - before < 50  # the records are bytes, not object graphs
    record = log.read(1_999, 1)["records"][0]
    assert record["inputs"]["x"] == {"dtype": "float32", "shape": [1, 64], "data": [1.0] * 64}
