"""The replica's payload log: one record per inference request, read by sequence."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest

from ferryman.engines.onnx import OnnxEngine
from ferryman.errors import InvalidInput
from ferryman.protocol.payload_sampling import is_logged
from ferryman.reference import Histogram, ReferenceData
from ferryman.serving.payloads import PayloadLog, PayloadPolicy
from tests.serving.conftest import affine_model, golden, replica, running

pytestmark = pytest.mark.anyio

HIST = Histogram(edges=(0.0, 10.0), fractions=(1.0,))
REFERENCE = ReferenceData(
    golden=(golden([0.0, 1.0, 2.0, 3.0]),),
    labels=("a", "b", "c", "d"),
    input_summaries={"f0": HIST, "f1": HIST, "f2": HIST, "f3": HIST},
)


def body(rows: list[list[float]]) -> dict[str, object]:
    flat = [value for row in rows for value in row]
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4], "data": flat}]}


async def test_each_request_leaves_a_record_with_its_id_prediction_and_summaries() -> None:
    app = replica(OnnxEngine(affine_model()), REFERENCE, payload_input_sample_rate=1.0)
    async with running(app) as http:
        answered = await http.post(
            "/v2/models/tiny/infer",
            json=body([[0, 0, 5, 1], [9, 0, 0, 0]]),
            headers={"ferryman-request-id": "req-1"},
        )
        refused = await http.post("/v2/models/tiny/infer", json={"inputs": []})
        log = (await http.get("/ferryman/v1/payloads")).json()
    assert answered.status_code == 200
    assert refused.status_code == 400
    first, second = log["records"]
    assert first["request_id"] == answered.headers["ferryman-request-id"]
    assert first["correlation_id"] == "req-1"
    assert first["status"] == 200
    assert first["predictions"] == ["c", "a"]  # argmax of softmax(x), by label
    assert first["summaries"] == {"f0": [0.0, 9.0], "f1": [0.0, 0.0], "f2": [5.0, 0.0],
                                  "f3": [1.0, 0.0]}  # fmt: skip
    assert first["inputs"]["x"]["shape"] == [2, 4]
    assert first["latency_ms"] > 0
    assert second["status"] == 400
    assert second["predictions"] is None
    assert second["request_id"] == refused.headers["ferryman-request-id"]
    assert second["correlation_id"] is None
    assert log["next"] == second["seq"] == first["seq"] + 1


async def test_reading_after_a_sequence_returns_only_newer_records() -> None:
    app = replica(OnnxEngine(affine_model()), REFERENCE)
    async with running(app) as http:
        for _ in range(3):
            await http.post("/v2/models/tiny/infer", json=body([[1, 2, 3, 4]]))
        first = (await http.get("/ferryman/v1/payloads?limit=2")).json()
        rest = (await http.get(f"/ferryman/v1/payloads?after={first['next']}")).json()
        bad = await http.get("/ferryman/v1/payloads?after=-1")
    assert [r["seq"] for r in first["records"]] == [1, 2]
    assert [r["seq"] for r in rest["records"]] == [3]
    assert bad.status_code == 400
    assert "after" in bad.json()["error"]


def test_the_ring_keeps_the_newest_and_reports_what_a_slow_reader_missed() -> None:
    log = PayloadLog(PayloadPolicy(capacity=3, input_sample_rate=0.0), rng=random.Random(1))
    for index in range(5):
        payload = log.begin(f"r{index}")
        log.describe(payload, {"x": np.zeros((1, 2), np.float32)}, None)
        log.finish(payload, 200, 0.001)
    page = log.read(0, 10)
    assert [r["request_id"] for r in page["records"]] == ["r2", "r3", "r4"]
    assert page["dropped"] == 2
    assert page["records"][0]["inputs"] is None  # sample rate 0: no inputs kept
    assert log.read(5, 10) == {
        "instance": log.instance, "next": 5, "dropped": 0, "sample_rate": 1.0,
        "totals": {"answered": 5, "sampled_out": 0, "dropped": 2}, "records": [],
    }  # fmt: skip
    with pytest.raises(InvalidInput, match="limit"):
        log.read(0, 0)


def answer(log: PayloadLog, request_id: str) -> None:
    payload = log.begin(request_id)
    log.describe(payload, {"x": np.zeros((1, 2), np.float32)}, None)
    log.finish(payload, 200, 0.001)


def test_only_records_no_reader_took_count_as_dropped() -> None:
    log = PayloadLog(PayloadPolicy(capacity=3, input_sample_rate=0.0))
    for index in range(3):
        answer(log, f"r{index}")
    assert len(log.read(0, 2, log.instance)["records"]) == 2  # r0 and r1 taken
    assert len(log.read(2, 1, "an-earlier-process")["records"]) == 1  # r2 shown, not taken
    for index in range(3, 6):
        answer(log, f"r{index}")  # pushes out r0, r1 (taken) and r2 (never taken)
    assert log.outcomes() == {"logged": 6, "sampled_out": 0, "dropped": 1}
    page = log.read(2, 10)
    assert page["dropped"] == 1  # what this reader missed: r2
    assert [r["request_id"] for r in page["records"]] == ["r3", "r4", "r5"]


def test_a_declared_sample_rate_keeps_exactly_the_ids_the_shared_rule_names() -> None:
    log = PayloadLog(PayloadPolicy(capacity=1_000, input_sample_rate=0.0, sample_rate=0.25))
    ids = [f"request-{index}" for index in range(400)]
    for request_id in ids:
        answer(log, request_id)
    kept = [r["request_id"] for r in log.read(0, 1_000)["records"]]
    assert kept == [request_id for request_id in ids if is_logged(request_id, 0.25)]
    assert 60 < len(kept) < 140  # about a quarter
    assert log.outcomes() == {"logged": len(kept), "sampled_out": 400 - len(kept), "dropped": 0}
    assert log.read(0, 1)["sample_rate"] == 0.25


async def test_metrics_count_the_log_outcomes() -> None:
    app = replica(OnnxEngine(affine_model()), REFERENCE, payload_sample_rate=0.0)
    async with running(app) as http:
        for _ in range(3):
            await http.post("/v2/models/tiny/infer", json=body([[1, 2, 3, 4]]))
        exposition = (await http.get("/metrics")).text
        page = (await http.get("/ferryman/v1/payloads")).json()
    assert page["records"] == []
    assert page["totals"] == {"answered": 3, "sampled_out": 3, "dropped": 0}
    counted = [line for line in exposition.splitlines() if 'outcome="sampled_out"' in line]
    assert counted[0].startswith("ferryman_payload_records_total{")
    assert counted[0].endswith("} 3.0")
    assert "ferryman_payload_sample_rate{" in exposition


def test_inputs_above_the_size_cap_are_never_kept() -> None:
    log = PayloadLog(PayloadPolicy(capacity=2, input_sample_rate=1.0, max_input_bytes=16))
    small, large = log.begin("small"), log.begin("large")
    log.describe(small, {"x": np.zeros((1, 4), np.float32)}, None)
    log.describe(large, {"x": np.zeros((1, 5), np.float32)}, None)
    assert small.inputs is not None
    assert large.inputs is None


def test_a_full_ring_holds_its_records_at_about_their_encoded_size() -> None:
    """The ring's memory is what its records' JSON takes, not the encoder's 4 KiB buffers
    (which made a full ring of 10,000 records 40 MiB of a replica's RSS)."""
    log = PayloadLog(PayloadPolicy(capacity=1_000, input_sample_rate=0.0))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1_000):
            payload = log.begin(f"request-{n}")
            log.describe(payload, {"x": np.zeros((1, 4), np.float32)}, None)
            log.finish(payload, 200, 0.001)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    encoded = len(log.page(0, 1_000))
    assert held < 2 * encoded  # ~200 bytes a record, each a bytes object of its own size
