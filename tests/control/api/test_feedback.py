"""Feedback end to end over real HTTP: a replica answers, the collector keeps its payload
log, labels arrive at ``POST /api/v1/feedback``, and the API searches and scores them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ferryman.control.monitor.collector import PayloadCollector, Retention
from ferryman.engines.onnx import OnnxEngine
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.reference import Histogram, ReferenceData
from ferryman.registry import DeploymentSpec, VariantSpec
from ferryman.serving.app import create_app
from ferryman.serving.metrics import ReplicaIdentity
from tests.control.api.conftest import RunningServer
from tests.serving.conftest import serving_in_thread, settings_with

LABELS = ("a", "b", "c", "d")


def argmax_classifier() -> bytes:
    """x FP32 [N, 4] -> p = softmax(x): the top-1 class is the largest input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["p"], axis=1)], "c", [x], [p])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


@pytest.fixture
def replica_url() -> Iterator[str]:
    flat = Histogram(edges=(-10.0, 0.0, 10.0), fractions=(0.5, 0.5))
    reference = ReferenceData(labels=LABELS, input_summaries={f"f{i}": flat for i in range(4)})
    app = create_app(
        settings_with(payload_input_sample_rate=1.0),
        OnnxEngine(argmax_classifier()),
        ReplicaIdentity("m", "1", "onnx-fp32"),
        reference,
    )
    with serving_in_thread(app) as running:
        yield f"http://{running.address}"


def infer(url: str, rows: list[list[float]]) -> str:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
                        "data": [v for row in rows for v in row]}]}  # fmt: skip
    answer = httpx.post(f"{url}/v2/models/m/infer", json=body)
    assert answer.status_code == 200
    return answer.headers["ferryman-request-id"]


def test_labels_join_predictions_into_quality(control: RunningServer, replica_url: str) -> None:
    registry = control.registry
    registry.register("m", argmax_classifier(), "alice", reference=ReferenceData(labels=LABELS))
    registry.deployments.put(
        DeploymentSpec(endpoint="m", variants=(VariantSpec(model="m", version=1),)), "alice"
    )
    rng = np.random.default_rng(0)
    sent = []
    for _ in range(20):
        row = rng.normal(size=4).round(3).tolist()
        sent.append((infer(replica_url, [row]), LABELS[int(np.argmax(row))]))
    route = VariantRoute(name="v1", model="m", version=1, weight=100, backends=(replica_url,))
    table = RouteTable(
        generation=1, endpoints={"m": EndpointRoute(endpoint="m", variants=(route,))}
    )
    with httpx.Client(timeout=5) as http:
        collector = PayloadCollector(registry, http, Retention())
        assert collector.tick(table) == 20
        assert collector.tick(table) == 0  # nothing new
        restarted = PayloadCollector(registry, http, Retention())
        assert restarted.tick(table) == 0  # resumes after the last record the registry holds
    assert registry.payloads.count("m") == 20

    api = httpx.Client(base_url=control.url, headers={"authorization": f"Bearer {control.token}"})
    # the true label is the model's answer for 15 requests; "z" is no class of the model
    feedback = [{"request_id": rid, "label": label if i < 15 else "z"}
                for i, (rid, label) in enumerate(sent)]  # fmt: skip
    answer = api.post(
        "/api/v1/feedback", json=[*feedback, {"request_id": "never-seen", "label": "a"}]
    )
    assert answer.status_code == 200, answer.text
    told = answer.json()
    assert {key: told[key] for key in ("stored", "corrected", "unknown", "refused")} == {
        "stored": 15, "corrected": 0, "unknown": 1, "refused": 5,
    }  # fmt: skip
    assert [item["status"] for item in told["items"][15:]] == ["unknown_class"] * 5 + [
        "unknown_request"
    ]
    assert (
        "label 'z' is not a class of m v1 (its classes: a, b, c, d)" in told["items"][15]["detail"]
    )

    wrong = [{"request_id": rid, "label": "b" if label != "b" else "c"}
             for rid, label in sent[15:]]  # fmt: skip
    assert api.post("/api/v1/feedback", json=wrong).json()["stored"] == 5
    quality = api.get("/api/v1/endpoints/m/quality").json()["variants"]["v1"]
    assert quality["labelled"] == 20
    assert quality["accuracy"] == pytest.approx(0.75)
    assert quality["version"] == 1
    assert quality["payload_log"] == {  # what the log kept, beside the figures it stands on
        "sample_rate": 1.0, "answered": 20, "logged": 20, "sampled_out": 0, "dropped": 0
    }  # fmt: skip

    records = api.get("/api/v1/endpoints/m/payloads", params={"limit": 5}).json()["records"]
    assert len(records) == 5
    newest = records[0]
    assert newest["request_id"] == sent[-1][0]
    assert newest["labels"] == [wrong[-1]["label"]]
    assert newest["predictions"] == [sent[-1][1]]
    assert newest["inputs"]["x"]["shape"] == [1, 4]
    assert newest["status"] == 200
    assert api.get("/api/v1/endpoints/m/payloads", params={"status": 500}).json() == {"records": []}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"request_id": "../x", "label": "a"}, "request_id"),
        ({"request_id": "r1"}, "label"),
        ({"request_id": "r1", "label": "a", "extra": 1}, "extra"),
        ([{"request_id": "r", "label": "a"}] * 10_001, "10000"),
        ({"request_id": "r1", "label": ""}, "label"),
        ({"request_id": "r1", "label": []}, "label"),
        ({"request_id": "r1", "label": "x" * 257}, "256"),
    ],
)
def test_bad_feedback_is_a_400_that_says_what_was_wrong(
    control: RunningServer, body: object, problem: str
) -> None:
    answer = httpx.post(
        f"{control.url}/api/v1/feedback", json=body,
        headers={"authorization": f"Bearer {control.token}"},
    )  # fmt: skip
    assert answer.status_code == 400
    assert problem in answer.json()["error"]
    assert control.registry.payloads.give_feedback([], "x") == []


def test_searching_an_unknown_endpoint_or_bad_filters(control: RunningServer) -> None:
    api = httpx.Client(base_url=control.url, headers={"authorization": f"Bearer {control.token}"})
    assert api.get("/api/v1/endpoints/m/payloads").json() == {"records": []}
    assert api.get("/api/v1/endpoints/m/payloads", params={"limit": 0}).status_code == 400
    assert api.get("/api/v1/endpoints/m/payloads", params={"since": "yesterday"}).status_code == 400
    assert api.get("/api/v1/endpoints/nowhere/quality").status_code == 404
    assert httpx.post(f"{control.url}/api/v1/feedback", json={}).status_code == 401
