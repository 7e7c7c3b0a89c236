"""Dynamic batching: own answers under concurrency, overflow, deadlines, failing batches."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from ferryman.engines.function import FunctionEngine
from ferryman.engines.onnx import OnnxEngine
from ferryman.errors import DeadlineExceeded, Unavailable
from ferryman.serving.dataplane import DataPlane
from ferryman.signature import Signature, TensorSpec
from tests.figures import Figures
from tests.serving.conftest import affine_model, replica, running, serving_in_thread

pytestmark = pytest.mark.anyio

URL = "/v2/models/tiny/infer"
SPEC = TensorSpec(name="x", datatype="FP32", shape=(-1, 4))
SIGNATURE = Signature(inputs=(SPEC,), outputs=(SPEC.model_copy(update={"name": "y"}),))


def body(x: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip


class GatedModel:
    """y = x + 1, after ``gate`` opens; fails on batches that contain the value 13."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.entered.set()
        self.gate.wait(timeout=10)
        self.batches.append(len(inputs["x"]))
        if (inputs["x"] == 13).any():
            raise ValueError("poison value 13")
        return {"y": inputs["x"] + 1}


async def queued(plane: DataPlane, count: int) -> None:
    """Let the event loop run until ``count`` requests wait in the batcher's queue."""
    for _ in range(10_000):
        if plane.queued == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{plane.queued} queued, expected {count}")


async def test_every_response_matches_its_request_under_concurrency() -> None:
    app = replica(OnnxEngine(affine_model()), max_batch_size=16, max_delay_ms=20)
    rng = np.random.default_rng(7)
    requests = [rng.normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(200)]
    async with running(app) as client:
        responses = await asyncio.gather(*(client.post(URL, json=body(x)) for x in requests))
        metrics = (await client.get("/metrics")).text
    for x, response in zip(requests, responses, strict=True):
        y = response.json()["outputs"][0]
        assert y["shape"] == list(x.shape)
        np.testing.assert_allclose(np.reshape(y["data"], x.shape), x * 2 + 1, rtol=1e-6)
    calls = float(metrics.split("ferryman_batch_size_count{")[1].split("} ")[1].split()[0])
    assert calls < 100, "requests were not batched"


async def test_full_queue_answers_503_with_retry_after_at_once() -> None:
    model = GatedModel()
    app = replica(
        FunctionEngine(SIGNATURE, model), max_batch_size=1, queue_capacity=2, model_calls=1
    )
    x = np.zeros((1, 4), dtype=np.float32)
    async with running(app) as client:
        first = asyncio.ensure_future(client.post(URL, json=body(x)))
        await asyncio.to_thread(model.entered.wait, 10)
        waiting = [asyncio.ensure_future(client.post(URL, json=body(x))) for _ in range(2)]
        await queued(app.state.plane, 2)
        started = time.monotonic()
        refused = await client.post(URL, json=body(x))
        refused_in_s = time.monotonic() - started
        metrics = (await client.get("/metrics")).text
        model.gate.set()
        answered = await asyncio.gather(first, *waiting)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "2 requests already wait" in refused.json()["error"]
    assert refused_in_s < 0.1  # at once: it waits for nothing (20 ms in L2 is a load figure)
    assert [r.status_code for r in answered] == [200, 200, 200]
    labels = 'model="tiny",variant="onnx-fp32",version="3"'
    assert f"ferryman_in_flight_requests{{{labels}}} 3.0" in metrics


async def test_deadline_gives_504_and_the_replica_recovers() -> None:
    model = GatedModel()
    app = replica(FunctionEngine(SIGNATURE, model), request_timeout_s=0.2)
    x = np.zeros((1, 4), dtype=np.float32)
    async with running(app) as client:
        started = time.monotonic()
        late = await client.post(URL, json=body(x))
        waited_s = time.monotonic() - started
        model.gate.set()
        after = await client.post(URL, json=body(x))
    assert late.status_code == 504
    assert "deadline" in late.json()["error"]
    assert 0.2 <= waited_s < 1.5  # the bound leaves room for a loaded CI machine
    assert after.status_code == 200


async def test_a_model_error_fails_only_the_poison_request() -> None:
    """RELIABILITY F3a: the batch [13, 1] fails, each runs again alone, only 13 fails."""
    model = GatedModel()
    app = replica(FunctionEngine(SIGNATURE, model), max_batch_size=2, model_calls=1)
    values = [0, 13, 1, 2]  # batches: [0], [13, 1] (fails), [13] (fails), [1], then [2]
    async with running(app) as client:
        first = asyncio.ensure_future(client.post(URL, json=body(np.full((1, 4), 0, "f4"))))
        await asyncio.to_thread(model.entered.wait, 10)
        rest = []
        for count, value in enumerate(values[1:], start=1):
            rest.append(
                asyncio.ensure_future(client.post(URL, json=body(np.full((1, 4), value, "f4"))))
            )
            await queued(app.state.plane, count)
        model.gate.set()
        responses = await asyncio.gather(first, *rest)
    assert [r.status_code for r in responses] == [200, 500, 200, 200]
    assert "failed on a batch of 1 request(s): ValueError: poison value 13" in responses[1].text
    assert responses[2].json()["outputs"][0]["data"] == [2, 2, 2, 2]
    assert responses[3].json()["outputs"][0]["data"] == [3, 3, 3, 3]
    assert model.batches == [1, 2, 1, 1, 1]


async def test_a_fast_model_isolates_the_poison_request_too() -> None:
    """A model seen to be fast (it once ran on the event loop) retries alone like any other."""
    model = GatedModel()
    model.gate.set()
    app = replica(FunctionEngine(SIGNATURE, model), max_batch_size=8, max_delay_ms=50)
    async with running(app) as client:
        await client.post(URL, json=body(np.zeros((1, 4), "f4")))  # times the model
        values = [1, 2, 13, 3, 4]
        responses = await asyncio.gather(
            *(client.post(URL, json=body(np.full((1, 4), v, "f4"))) for v in values)
        )
    assert [r.status_code for r in responses] == [200, 200, 500, 200, 200]
    assert any(size > 1 for size in model.batches[1:]), model.batches  # they did share a call
    assert [r.json()["outputs"][0]["data"][0] for r in responses if r.status_code == 200] == [
        2, 3, 4, 5,
    ]  # fmt: skip


async def test_a_lone_request_does_not_wait_for_company() -> None:
    app = replica(OnnxEngine(affine_model()), max_delay_ms=1000)
    async with running(app) as client:
        await client.post(URL, json=body(np.ones((1, 4), "f4")))
        started = time.monotonic()
        response = await client.post(URL, json=body(np.ones((1, 4), "f4")))
        elapsed_s = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed_s < 0.5  # far below the 1 s it would wait for company


async def test_a_body_still_arriving_is_no_company() -> None:
    """A slow body (slowhttptest -B) once counted as on its way: every batch waited 2 ms."""
    app = replica(OnnxEngine(affine_model()), max_delay_ms=1000)
    plane: DataPlane = app.state.plane
    gate = asyncio.Event()
    document = json.dumps(body(np.ones((1, 4), "f4"))).encode()

    async def trickle() -> AsyncIterator[bytes]:
        yield document[:10]
        await gate.wait()
        yield document[10:]

    async with running(app) as client:
        slow = asyncio.create_task(client.post(URL, content=trickle()))
        for _ in range(10_000):
            if plane.in_flight == 1:
                break
            await asyncio.sleep(0)
        assert plane.in_flight == 1  # the slow request waits for the rest of its body
        started = time.monotonic()
        response = await client.post(URL, json=body(np.ones((1, 4), "f4")))
        elapsed_s = time.monotonic() - started
        gate.set()
        assert (await slow).status_code == 200
    assert response.status_code == 200
    assert elapsed_s < 0.5  # far below the 1 s it would wait for company


async def test_batches_never_exceed_max_batch_size() -> None:
    model = GatedModel()
    model.gate.set()
    app = replica(FunctionEngine(SIGNATURE, model), max_batch_size=4, max_delay_ms=50)
    x = np.ones((1, 4), dtype=np.float32)
    async with running(app) as client:
        responses = await asyncio.gather(*(client.post(URL, json=body(x)) for _ in range(40)))
    assert {r.status_code for r in responses} == {200}
    assert max(model.batches) <= 4
    assert sum(model.batches) == 40
    assert len(model.batches) < 40


async def test_one_timer_expires_each_request_at_its_own_deadline() -> None:
    model = GatedModel()
    app = replica(FunctionEngine(SIGNATURE, model), model_calls=1)
    x = np.zeros((1, 4), dtype=np.float32)
    async with running(app):
        plane = app.state.plane
        started = time.monotonic()
        running_call = asyncio.ensure_future(plane.infer({"x": x}, started + 5))
        await asyncio.to_thread(model.entered.wait, 10)
        late = asyncio.ensure_future(plane.infer({"x": x}, started + 0.4))
        early = asyncio.ensure_future(plane.infer({"x": x}, started + 0.1))  # a gRPC deadline
        outcomes = {}
        for name, call in (("early", early), ("late", late)):
            with pytest.raises(DeadlineExceeded):
                await call
            outcomes[name] = time.monotonic() - started
        model.gate.set()
        answered = await running_call
    assert 0.1 <= outcomes["early"] < 0.35
    assert 0.4 <= outcomes["late"] < 1.5
    np.testing.assert_array_equal(answered["y"], x + 1)


async def test_stopping_fails_the_running_and_the_queued_requests_at_once() -> None:
    model = GatedModel()
    app = replica(FunctionEngine(SIGNATURE, model), model_calls=1)
    x = np.zeros((1, 4), dtype=np.float32)
    async with running(app):
        plane = app.state.plane
        deadline = time.monotonic() + 30
        in_model = asyncio.ensure_future(plane.infer({"x": x}, deadline))
        await asyncio.to_thread(model.entered.wait, 10)
        waiting = asyncio.ensure_future(plane.infer({"x": x}, deadline))
        await queued(plane, 1)
        started = time.monotonic()
        await plane._batcher.stop()
        outcomes = await asyncio.gather(in_model, waiting, return_exceptions=True)
        stopped_in_s = time.monotonic() - started
        model.gate.set()
    assert [type(outcome) for outcome in outcomes] == [Unavailable, Unavailable]
    assert all("shutting down" in str(outcome) for outcome in outcomes)
    assert stopped_in_s < 1  # not at their 30 s deadline


class SleepyModel:
    """y = x + 1 at once, except for a batch holding SLEEPY, which sleeps ``sleep_s`` first:
    a model that is usually fast and now and then takes seconds."""

    SLEEPY = 55.0

    def __init__(self, sleep_s: float) -> None:
        self.sleep_s = sleep_s
        self.woke = threading.Event()

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if (inputs["x"] == self.SLEEPY).any():
            time.sleep(self.sleep_s)
            self.woke.set()
        return {"y": inputs["x"] + 1}


@pytest.mark.parametrize("warmed", [False, True], ids=["cold", "after-fast-calls"])
def test_f4_a_model_that_sleeps_5_s_gets_504_at_the_2_s_deadline_and_the_queue_is_bounded(
    warmed: bool, request: pytest.FixtureRequest
) -> None:
    """RELIABILITY F4 over real HTTP: the model sleeps 5 s, the deadline is 2 s: 504 in
    2.0-2.3 s. While the model still sleeps the queue stays bounded (the one request over
    ``queue_capacity`` gets 503 at once, the ones in it end at their own deadlines), and once
    it wakes the next requests are served with the right answers (the worker is not wedged).
    ``after-fast-calls``: the same after fast calls taught the batcher the model is quick."""
    model = SleepyModel(5.0)
    app = replica(
        FunctionEngine(SIGNATURE, model), request_timeout_s=2.0, queue_capacity=3,
        max_batch_size=1, model_calls=1,  # one call at a time: the queue fills behind it
    )  # fmt: skip
    figures = Figures("F4", request.node.nodeid)
    with (
        serving_in_thread(app) as server,
        httpx.Client(base_url=f"http://{server.address}", timeout=30) as client,
    ):
        if warmed:
            for value in range(5):
                assert client.post(URL, json=body(np.full((1, 4), value, "f4"))).status_code == 200
        started = time.monotonic()
        slow = client.post(URL, json=body(np.full((1, 4), SleepyModel.SLEEPY, "f4")))
        slow_s = time.monotonic() - started
        with ThreadPoolExecutor(4) as pool:  # the model still sleeps: fill the queue
            queued_answers = [
                pool.submit(client.post, URL, json=body(np.full((1, 4), v, "f4"))) for v in range(3)
            ]
            time.sleep(0.3)
            overflow_started = time.monotonic()
            overflow = client.post(URL, json=body(np.full((1, 4), 9, "f4")))
            overflow_s = time.monotonic() - overflow_started
            in_queue = [answer.result(timeout=10).status_code for answer in queued_answers]
        model.woke.wait(10)
        time.sleep(0.2)  # woke is set inside the call: let the batcher take its return
        after = [client.post(URL, json=body(np.full((1, 4), v, "f4"))) for v in range(5)]
    figures.check(
        "504 of the 5 s call", "504 in 2.0-2.3 s", f"{slow.status_code} in {slow_s:.2f} s",
        slow.status_code == 504 and 2.0 <= slow_s <= 2.3,
    )  # fmt: skip
    figures.check(
        "over the bounded queue", "503 at once", f"{overflow.status_code} in {overflow_s:.3f} s",
        overflow.status_code == 503 and overflow_s < 0.1,
    )  # fmt: skip
    figures.check(
        "queued behind it", "each ends: 504 at its deadline or 200", str(in_queue),
        set(in_queue) <= {200, 504},
    )  # fmt: skip
    right = [r.status_code == 200 and r.json()["outputs"][0]["data"] == [v + 1.0] * 4
             for v, r in enumerate(after)]  # fmt: skip
    figures.check(
        "next requests", "served, right answers",
        f"{sum(right)} of {len(right)} right ({[r.status_code for r in after]})", all(right),
    )  # fmt: skip
    figures.verify()


class CountingModel:
    """y = x + 1, holding each call until ``gate`` opens; counts the calls inside at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.batches: list[int] = []

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.batches.append(len(inputs["x"]))
        self.gate.wait(timeout=10)
        with self.lock:
            self.inside -= 1
        return {"y": inputs["x"] + 1}


async def test_model_calls_run_at_once_and_share_the_queue() -> None:
    """With model_calls=2 a second call starts while the first runs, and what waits is
    split between the calls rather than all taken by the first to come free."""
    model = CountingModel()
    app = replica(FunctionEngine(SIGNATURE, model), model_calls=2, max_batch_size=32)
    async with running(app) as client:
        plane = app.state.plane
        deadline = time.monotonic() + 30
        x = np.zeros((1, 4), dtype=np.float32)
        calls = [asyncio.ensure_future(plane.infer({"x": x}, deadline)) for _ in range(2)]
        for _ in range(1000):  # both calls enter the model, neither waits for the other
            if model.inside == 2:
                break
            await asyncio.sleep(0.005)
        assert model.inside == 2
        calls += [asyncio.ensure_future(plane.infer({"x": x}, deadline)) for _ in range(6)]
        await queued(plane, 6)
        model.gate.set()
        answers = await asyncio.gather(*calls)
        metrics = (await client.get("/metrics")).text
    assert all(np.array_equal(answer["y"], x + 1) for answer in answers)
    assert model.most_inside == 2
    assert model.batches[:2] == [1, 1]
    assert max(model.batches[2:]) <= 3  # a share of the 6 waiting, not all of them
    assert sum(model.batches) == 8
    assert "ferryman_batch_size_count" in metrics
