"""TF-Serving ``:predict`` and the plain ``/predict`` for people (images and JSON rows)."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from ferryman.engines.onnx import OnnxEngine
from ferryman.reference import ReferenceData
from tests.serving.conftest import replica, running

pytestmark = pytest.mark.anyio

LABELS = ("bright", "dark-ish", "dark")


def brightness_model() -> bytes:
    """pixels FP32 [N, 1, 8, 8] -> probs = softmax(mean(pixels) * [10, 0, -10] + [0, 0, 1])."""
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 8, 8])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["scores"]),
        helper.make_node("Add", ["scores", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    weights = np.tile(np.array([10.0, 0.0, -10.0], dtype=np.float32) / 64, (64, 1))
    constants = [
        helper.make_tensor("w", TensorProto.FLOAT, [64, 3], weights.ravel().tolist()),
        helper.make_tensor("b", TensorProto.FLOAT, [3], [0.0, 0.0, 1.0]),
    ]
    graph = helper.make_graph(nodes, "brightness", [pixels], [probs], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def png(value: int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (value,) * len(mode)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = replica(OnnxEngine(brightness_model()), ReferenceData(labels=LABELS))
    async with running(app) as http:
        yield http


@pytest.mark.parametrize(("value", "label"), [(255, "bright"), (0, "dark")])
async def test_predict_an_image_from_bytes(
    client: httpx.AsyncClient, value: int, label: str
) -> None:
    response = await client.post(
        "/predict", content=png(value), headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["label"] == label
    assert set(prediction["probabilities"]) == set(LABELS)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)


async def test_predict_a_base64_image_and_a_jpeg(client: httpx.AsyncClient) -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 250).save(buffer, format="JPEG")
    encoded = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = await client.post("/predict", json={"image": encoded})
    assert response.json()["predictions"][0]["label"] == "bright"


async def test_predict_json_rows(client: httpx.AsyncClient) -> None:
    rows = [[1.0] * 64, [0.0] * 64]
    response = await client.post("/predict", json={"rows": rows})
    assert [p["label"] for p in response.json()["predictions"]] == ["bright", "dark"]
    single = await client.post("/predict", json={"row": [1.0] * 64})
    assert single.json()["model"] == "tiny"
    assert single.json()["version"] == "3"


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"GIF89a not really", "image/png", "not a PNG or JPEG"),
        (b'{"image": "***"}', "application/json", "not valid base64"),
        (b'{"row": [1, 2]}', "application/json", "has 2 values; shape [1, 1, 8, 8] needs 64"),
        (b'{"row": ["a"]}', "application/json", "has 1 values"),
        (b'{"something": 1}', "application/json", 'send {"row"'),
        (png(9, size=(5000, 5000), mode="L"), "image/png", "the limit is 16777216 pixels"),
    ],
)
async def test_predict_refuses_bad_input(
    client: httpx.AsyncClient, content: bytes, content_type: str, message: str
) -> None:
    response = await client.post(
        "/predict", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_tf_serving_instances_and_inputs(client: httpx.AsyncClient) -> None:
    image = np.ones((1, 8, 8)).tolist()
    rows = await client.post("/v1/models/tiny:predict", json={"instances": [image, image]})
    assert rows.status_code == 200, rows.text
    predictions = rows.json()["predictions"]
    assert len(predictions) == 2
    assert np.argmax(predictions[0]) == 0
    columns = await client.post("/v1/models/tiny:predict", json={"inputs": {"pixels": [image]}})
    assert np.shape(columns.json()["outputs"]) == (1, 3)


@pytest.mark.parametrize(
    ("path", "document", "status", "message"),
    [
        ("/v1/models/other:predict", {"instances": [1]}, 404, "serves 'tiny'"),
        ("/v1/models/tiny:predict", {"instances": [1], "inputs": [1]}, 400, "exactly one"),
        ("/v1/models/tiny:predict", {"instances": [[1, 2]]}, 400, "needs 64"),
        ("/v1/models/tiny:predict", {"instances": []}, 400, "non-empty list"),
    ],
)
async def test_tf_serving_errors(
    client: httpx.AsyncClient, path: str, document: object, status: int, message: str
) -> None:
    response = await client.post(path, json=document)
    assert response.status_code == status
    assert message in response.json()["error"]
