"""Open Inference Protocol V2 conformance over the in-process ASGI client."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.anyio


def infer_body(data: list[float], shape: list[int] | None = None) -> dict[str, object]:
    shape = shape or [1, len(data)]
    return {"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": data}]}


@pytest.mark.parametrize(
    ("path", "status", "document"),
    [
        ("/v2/health/live", 200, {"live": True, "registry": ""}),
        ("/v2/health/ready", 200, {"ready": True}),
        ("/v2/models/tiny/ready", 200, {"name": "tiny", "ready": True}),
        ("/v2/models/tiny/versions/3/ready", 200, {"name": "tiny", "ready": True}),
    ],
)
async def test_health(client: httpx.AsyncClient, path: str, status: int, document: object) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()) == (status, document)


async def test_server_metadata(client: httpx.AsyncClient) -> None:
    document = (await client.get("/v2")).json()
    assert document["name"] == "ferryman"
    assert "binary_tensor_data" in document["extensions"]


@pytest.mark.parametrize("path", ["/v2/models/tiny", "/v2/models/tiny/versions/3"])
async def test_model_metadata(client: httpx.AsyncClient, path: str) -> None:
    document = (await client.get(path)).json()
    assert document["name"] == "tiny"
    assert document["versions"] == ["3"]
    assert document["platform"] == "onnxruntime_onnx"
    assert document["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in document["outputs"]] == ["y", "p"]


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/v2/models/other", 404, "serves 'tiny'"),
        ("/v2/models/tiny/versions/9", 404, "serves version 3"),
        ("/v2/models/other/ready", 404, "serves 'tiny'"),
        ("/v2/models/..%2Fetc/ready", 404, "Not Found"),
        ("/v2/models/..%5Cetc/ready", 400, "not allowed"),
        ("/v2/models/Tiny%FF", 400, "not allowed"),
        ("/v2/nothing-here", 404, "Not Found"),
    ],
)
async def test_not_found_and_bad_names(
    client: httpx.AsyncClient, path: str, status: int, fragment: str
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert fragment in response.json()["error"]


async def test_wrong_method_is_405_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/models/tiny/infer")
    assert response.status_code == 405
    assert "error" in response.json()


async def test_infer_json(client: httpx.AsyncClient) -> None:
    body = infer_body([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]) | {"id": "abc", "outputs": [{"name": "y"}]}
    response = await client.post("/v2/models/tiny/versions/3/infer", json=body)
    assert response.status_code == 200
    document = response.json()
    assert document["id"] == "abc"
    assert document["model_name"] == "tiny"
    assert document["model_version"] == "3"
    assert document["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [2, 4], "data": [3, 5, 7, 9, 11, 13, 15, 17]}
    ]


async def test_infer_binary_tensors(client: httpx.AsyncClient) -> None:
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    header = json.dumps({
        "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "p", "parameters": {"binary_data": True}}, {"name": "y"}],
    }).encode()  # fmt: skip
    response = await client.post(
        "/v2/models/tiny/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200
    length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:length])
    p_out, y_out = document["outputs"]
    assert p_out["parameters"] == {"binary_data_size": 48}
    assert "data" not in p_out
    p = np.frombuffer(response.content[length:], dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(p, np.exp(x) / np.exp(x).sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(y_out["data"], (x * 2 + 1).ravel(), rtol=1e-6)
    assert struct.calcsize("<f") * 12 == 48


async def test_every_response_is_stamped(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/v2/health/live"),
        await client.post("/v2/models/tiny/infer", json=infer_body([1, 2, 3])),
        await client.get("/v2/models/nope"),
    ):
        assert response.headers["ferryman-model-version"] == "3"
        assert len(response.headers["ferryman-request-id"]) == 32


async def test_a_client_id_is_its_correlation_id_never_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.get("/v2/health/live", headers={"ferryman-request-id": "trace-42"})
    other = await client.get("/v2/health/live", headers={"x-request-id": "trace-43"})
    odd = await client.get("/v2/health/live", headers={"ferryman-request-id": "a b/../c"})
    assert ok.headers["ferryman-correlation-id"] == "trace-42"
    assert other.headers["ferryman-correlation-id"] == "trace-43"
    assert "ferryman-correlation-id" not in odd.headers
    ids = [answer.headers["ferryman-request-id"] for answer in (ok, other, odd)]
    assert len(set(ids)) == 3
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # the replica's own


async def test_metrics(client: httpx.AsyncClient) -> None:
    await client.post("/v2/models/tiny/infer", json=infer_body([1, 2, 3, 4]))
    await client.post("/v2/models/tiny/infer", json=infer_body([1, 2, 3]))
    text = (await client.get("/metrics")).text
    labels = 'model="tiny",variant="onnx-fp32",version="3"'
    assert f'ferryman_requests_total{{code="200",{labels}}} 1.0' in text
    assert f'ferryman_requests_total{{code="400",{labels}}} 1.0' in text
    assert f"ferryman_model_ready{{{labels}}} 1.0" in text
    for family in ("request_duration", "queue_duration", "compute_duration"):
        assert f"ferryman_{family}_seconds_count{{{labels}}}" in text
    assert f"ferryman_batch_size_count{{{labels}}} 1.0" in text
    assert f"ferryman_model_load_seconds{{{labels}}}" in text
    assert f"ferryman_in_flight_requests{{{labels}}}" in text
    # Top-1 classes of the first [batch, C] float output: x = [1, 2, 3, 4] → class 3.
    assert f'ferryman_predictions_total{{class="3",{labels}}} 1.0' in text
    assert f'ferryman_predictions_total{{class="0",{labels}}} 0.0' in text
