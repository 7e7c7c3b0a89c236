"""Feedback cannot be forged: request ids belong to the replica, a client's own id is only a
correlation id, and one label joins exactly one answer (issue 14).

A real replica on a loopback socket, the payload collector and the control plane's
``POST /api/v1/feedback`` over HTTP.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ferryman.control.monitor.collector import PayloadCollector, Retention
from ferryman.engines.onnx import OnnxEngine
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.reference import ReferenceData
from ferryman.registry import DeploymentSpec, VariantSpec
from ferryman.serving.app import create_app
from ferryman.serving.metrics import ReplicaIdentity
from tests.control.api.conftest import RunningServer
from tests.control.api.test_feedback import LABELS, argmax_classifier
from tests.serving.conftest import serving_in_thread, settings_with


@pytest.fixture
def replica_url() -> Iterator[str]:
    app = create_app(
        settings_with(),
        OnnxEngine(argmax_classifier()),
        ReplicaIdentity("m", "1", "onnx-fp32"),
        ReferenceData(labels=LABELS),
    )
    with serving_in_thread(app) as running:
        yield f"http://{running.address}"


def deployed(control: RunningServer, replica_url: str) -> RouteTable:
    """Endpoint m on version 1 of the argmax classifier, served by ``replica_url``."""
    registry = control.registry
    registry.register("m", argmax_classifier(), "alice", reference=ReferenceData(labels=LABELS))
    registry.deployments.put(
        DeploymentSpec(endpoint="m", variants=(VariantSpec(model="m", version=1),)), "alice"
    )
    route = VariantRoute(name="v1", model="m", version=1, weight=100, backends=(replica_url,))
    return RouteTable(generation=1, endpoints={"m": EndpointRoute(endpoint="m", variants=(route,))})


def one_hot(index: int) -> dict[str, object]:
    """A one-row request whose answer is class ``index`` (the argmax of its row)."""
    row = [0.0] * 4
    row[index] = 5.0
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": row}]}


def test_a_victims_id_sent_three_times_gets_one_label_joined_once(
    control: RunningServer, replica_url: str
) -> None:
    table = deployed(control, replica_url)
    infer = f"{replica_url}/v2/models/m/infer"
    victim = httpx.post(infer, json=one_hot(0))
    victim_id = victim.headers["ferryman-request-id"]
    forged = [
        httpx.post(infer, json=one_hot(1), headers={"ferryman-request-id": victim_id})
        for _ in range(3)
    ]
    for answer in forged:  # the forger's answers have ids of their own
        assert answer.headers["ferryman-request-id"] != victim_id
        assert answer.headers["ferryman-correlation-id"] == victim_id
    with httpx.Client(timeout=5) as http:
        assert PayloadCollector(control.registry, http, Retention()).tick(table) == 4
    api = httpx.Client(base_url=control.url, headers={"authorization": f"Bearer {control.token}"})
    told = api.post("/api/v1/feedback", json={"request_id": victim_id, "label": "a"}).json()
    assert told["stored"] == 1
    quality = api.get("/api/v1/endpoints/m/quality").json()["variants"]["v1"]
    assert (quality["labelled"], quality["accuracy"]) == (1, 1.0)  # never 4 rows, never 0.25
    records = api.get("/api/v1/endpoints/m/payloads").json()["records"]
    by_id = {record["request_id"]: record for record in records}
    assert by_id[victim_id]["labels"] == ["a"]
    forgeries = [r for r in records if r["correlation_id"] == victim_id]
    assert len(forgeries) == 3
    assert all(r["labels"] is None for r in forgeries)


def test_a_thousand_labelled_requests_with_fifty_forgeries_score_the_honest_rows(
    control: RunningServer, replica_url: str
) -> None:
    """20 client threads send 1,000 requests; 50 of them name an honest client's request id
    as their own (an answer of class d, which no honest label says). Each honest answer is
    labelled, right 80% of the time: accuracy comes from the 950 honest rows alone."""
    table = deployed(control, replica_url)
    infer = f"{replica_url}/v2/models/m/infer"
    auth = {"authorization": f"Bearer {control.token}"}
    honest_ids: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def client(number: int) -> tuple[int, int]:
        """50 requests; the first threads forge 10 each. Returns (honest, right) counts."""
        rng = random.Random(number)
        labels: list[dict[str, object]] = []
        honest = right = 0
        with httpx.Client(timeout=10) as http:
            for index in range(50):
                is_forged = number < 5 and index % 5 == 4
                with lock:
                    victim = rng.choice(honest_ids) if is_forged and honest_ids else None
                if victim is not None:  # another client's id, on an answer of class d
                    header = "x-request-id" if index % 2 else "ferryman-request-id"
                    answer = http.post(infer, json=one_hot(3), headers={header: victim})
                    assert answer.status_code == 200
                    continue
                predicted = rng.randrange(3)
                answer = http.post(infer, json=one_hot(predicted))
                assert answer.status_code == 200
                request_id = answer.headers["ferryman-request-id"]
                with lock:
                    honest_ids.append(request_id)
                is_right = rng.random() < 0.8
                truth = predicted if is_right else (predicted + 1) % 3
                labels.append({"request_id": request_id, "label": LABELS[truth]})
                honest, right = honest + 1, right + int(is_right)
                if len(labels) >= 10:
                    assert http.post(f"{control.url}/api/v1/feedback", json=labels,
                                     headers=auth).status_code == 200  # fmt: skip
                    labels = []
            if labels:
                http.post(f"{control.url}/api/v1/feedback", json=labels, headers=auth)
        return honest, right

    def collect() -> None:  # the control loop's collector, running beside the clients
        with httpx.Client(timeout=5) as http:
            collector = PayloadCollector(control.registry, http, Retention())
            while not done.wait(0.2):
                collector.tick(table)
            collector.tick(table)

    collecting = threading.Thread(target=collect)
    collecting.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            counts = list(pool.map(client, range(20)))
    finally:
        done.set()
        collecting.join(timeout=30)
    honest = sum(h for h, _ in counts)
    right = sum(r for _, r in counts)
    assert honest == 950
    assert control.registry.payloads.count("m") == 1000
    quality = httpx.get(f"{control.url}/api/v1/endpoints/m/quality", headers=auth).json()
    scores = quality["variants"]["v1"]
    assert scores["labelled"] == honest  # the 50 forged answers joined nothing
    assert scores["accuracy"] == pytest.approx(right / honest)


def test_labels_per_row_and_what_each_label_did_over_http(
    control: RunningServer, replica_url: str
) -> None:
    table = deployed(control, replica_url)
    rows = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4],
                        "data": [5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0]}]}  # fmt: skip
    three = httpx.post(f"{replica_url}/v2/models/m/infer", json=rows).headers["ferryman-request-id"]
    with httpx.Client(timeout=5) as http:
        assert PayloadCollector(control.registry, http, Retention()).tick(table) == 1
    api = httpx.Client(base_url=control.url, headers={"authorization": f"Bearer {control.token}"})
    one = api.post("/api/v1/feedback", json={"request_id": three, "label": "a"})
    assert one.status_code == 400
    assert one.json()["error"] == (
        f"wrong_row_count: request {three} answered 3 rows and got 1 label; send a list of "
        "3 labels, one per row in order"
    )
    mixed = api.post("/api/v1/feedback", json=[
        {"request_id": three, "label": ["a", "b", "z"]},
        {"request_id": three, "label": ["a", "b", "b"]},
        {"request_id": three, "label": ["a", "b", "c"]},
    ])  # fmt: skip
    assert mixed.status_code == 200
    told = mixed.json()
    assert [i["status"] for i in told["items"]] == ["unknown_class", "stored", "corrected"]
    assert told["items"][2]["previous"] == ["a", "b", "b"]
    quality = api.get("/api/v1/endpoints/m/quality").json()["variants"]["v1"]
    assert (quality["labelled"], quality["accuracy"]) == (3, 1.0)  # 3 rows, each once
