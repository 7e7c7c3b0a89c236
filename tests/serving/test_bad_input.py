"""RELIABILITY B2-B5, B7, B9: bad input gets a 4xx that says what was wrong, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from onnx import TensorProto, helper

from ferryman.engines.onnx import OnnxEngine
from tests.serving.conftest import affine_model, replica, running

pytestmark = pytest.mark.anyio

URL = "/v2/models/tiny/infer"


def tensor(**fields: object) -> bytes:
    item = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]} | fields
    return json.dumps({"inputs": [item]}).encode()


CORPUS: list[tuple[str, bytes, str]] = [
    # B2: the tensor contract
    ("wrong datatype", tensor(datatype="INT64"), "has datatype INT64; the model expects x FP32"),
    ("unknown datatype", tensor(datatype="FP128"), "datatype FP128"),
    ("wrong rank", tensor(shape=[4]), "has shape [4]; the model expects x FP32 [-1, 4]"),
    ("wrong dim", tensor(shape=[1, 7, 8]), "has shape [1, 7, 8]"),
    ("product != data", tensor(shape=[2, 4]), "has 4 values; shape [2, 4] needs 8"),
    ("negative dim", tensor(shape=[-1, 4]), "negative dimension"),
    ("huge dims", tensor(shape=[2147483647, 4]), "more than the"),
    ("huge dims 2", tensor(shape=[2147483647, 2147483647]), "has shape"),
    ("strings in FP32", tensor(data=["1", "2", "3", "4"]), "needs numbers; got values like '1'"),
    ("objects in data", tensor(data=[{}, 1, 2, 3]), "needs numbers"),
    ("ragged data", tensor(data=[[1, 2], [3]]), "ragged"),
    ("no data", tensor(data=None), "neither data nor a binary_data_size"),
    ("missing input", json.dumps({"inputs": [{"name": "z", "shape": [1], "datatype": "FP32",
                                              "data": [1]}]}).encode(), "not an input"),
    ("no inputs", b'{"inputs": []}', "inputs"),
    ("unknown output", json.dumps({"inputs": json.loads(tensor())["inputs"],
                                   "outputs": [{"name": "q"}]}).encode(), "output 'q'"),
    ("shape not ints", tensor(shape=["1", 4]), "shape"),
    ("bool shape", tensor(shape=[True, 4]), "shape"),
    ("binary size lies", tensor(data=None, parameters={"binary_data_size": 99}), "needs 16"),
    ("binary missing", tensor(data=None, parameters={"binary_data_size": 16}), "only 0 are left"),
    ("extra field", tensor()[:-1] + b', "evil": 1}', "evil"),
    # B4: JSON bombs
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "too deeply"),
    ("NaN", tensor(data=[1, 2, 3]).replace(b"3]", b"3, NaN]"), "NaN"),
    ("Infinity", tensor(data=[1, 2, 3]).replace(b"3]", b"3, -Infinity]"), "-Infinity"),
    ("1e999999", tensor(data=[1, 2, 3]).replace(b"3]", b"3, 1e999999]"), "NaN or infinity"),
    ("inf array", b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ['
     + b",".join([b"1e999999"] * 4) + b"]}]}", "NaN or infinity"),
    ("duplicate keys", b'{"inputs": [], "inputs": []}', "key 'inputs' twice"),
    ("not JSON", b"{'inputs': 1}", "not valid JSON"),
    ("not an object", b"[1, 2]", "not a V2 inference request"),
    ("empty body", b"", "not valid JSON"),
    # B5: encodings
    ("invalid UTF-8", b'{"inputs": "\xff\xfe"}', "not valid UTF-8"),
    ("UTF-16", '{"inputs": []}'.encode("utf-16"), "not valid UTF-8"),
]  # fmt: skip


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with running(replica(OnnxEngine(affine_model()), max_body_bytes=1024 * 1024)) as http:
        yield http


@pytest.mark.parametrize(("case", "body", "message"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_bad_input_corpus(
    client: httpx.AsyncClient, case: str, body: bytes, message: str
) -> None:
    response = await client.post(URL, content=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [("UINT8", [1, 2, 300, 4], "(0..255); got 1..300"), ("UINT8", [1.5, 2, 3, 4], "integers")],
)
async def test_integer_ranges(datatype: str, data: list[float], message: str) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    async with running(replica(OnnxEngine(model.SerializeToString()))) as http:
        ok = await http.post(URL, content=tensor(datatype=datatype, data=[1, 2, 3, 255]))
        bad = await http.post(URL, content=tensor(datatype=datatype, data=data))
    assert ok.json()["outputs"][0]["data"] == [1, 2, 3, 255]
    assert bad.status_code == 400
    assert message in bad.json()["error"]


async def test_body_over_the_declared_limit_is_refused_before_reading(
    client: httpx.AsyncClient,
) -> None:
    pulled = []

    async def body() -> AsyncIterator[bytes]:
        for index in range(10_000):
            pulled.append(index)
            yield b"x" * 1024

    response = await client.post(URL, content=body(), headers={"content-length": str(10 << 20)})
    assert response.status_code == 413
    assert "limit is 1048576" in response.json()["error"]
    assert len(pulled) <= 1


async def test_chunked_body_is_cut_at_the_limit(client: httpx.AsyncClient) -> None:
    pulled = []

    async def body() -> AsyncIterator[bytes]:
        for index in range(100_000):
            pulled.append(index)
            yield b"x" * 64

    response = await client.post(URL, content=body())
    assert response.status_code == 413
    assert len(pulled) <= (1024 * 1024) // 64 + 2


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-big": "a" * 64 * 1024}, 431),
        ({f"x-h{i}": "1" for i in range(1000)}, 431),
        ({"x-bytes": b"caf\xe9"}, 400),
    ],
    ids=["64KiB header", "1000 headers", "latin-1 header"],
)
async def test_header_limits(
    client: httpx.AsyncClient, headers: dict[str, str | bytes], status: int
) -> None:
    response = await client.post(URL, content=tensor(), headers=headers)  # type: ignore[arg-type]  # httpx sends bytes values; its types take str or bytes pairs only
    assert response.status_code == status
    assert "error" in response.json()


async def test_unknown_model_names_add_no_series(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text.count("\n")
    for index in range(300):
        response = await client.post(f"/v2/models/m{index}/infer", content=tensor())
        assert response.status_code == 404
    after = (await client.get("/metrics")).text
    assert after.count("\n") - before < 10
    assert "m17" not in after


async def test_the_whole_corpus_gets_no_5xx_and_the_replica_still_answers(
    client: httpx.AsyncClient,
) -> None:
    statuses = [(await client.post(URL, content=body)).status_code for _, body, _ in CORPUS]
    assert [s for s in statuses if s >= 500] == []
    after = await client.post(URL, content=tensor())
    assert after.status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'ferryman_requests_total{code="500"' not in metrics
