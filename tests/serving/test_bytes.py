"""BYTES tensors end to end: a real ONNX model with a string input, over V2 JSON and binary."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import AsyncIterator

import httpx
import pytest

from ferryman.engines.onnx import OnnxEngine
from tests.serving.conftest import replica, running, text_model

pytestmark = pytest.mark.anyio

URL = "/v2/models/tiny/infer"
WORDS = ["hello", "", "Ärger", "日本語 😀"]


def packed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_request(tail: bytes, shape: list[int], outputs_binary: bool = True) -> tuple[bytes, str]:
    header = json.dumps({
        "inputs": [{"name": "text", "shape": shape, "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(tail)}}],
        "outputs": [{"name": "shout", "parameters": {"binary_data": outputs_binary}}],
    }).encode()  # fmt: skip
    return header + tail, str(len(header))


def json_request(data: object, shape: list[int] | None = None) -> bytes:
    count = len(data) if isinstance(data, list) else 1
    return json.dumps({"inputs": [{"name": "text", "shape": shape or [count],
                                   "datatype": "BYTES", "data": data}]}).encode()  # fmt: skip


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = replica(OnnxEngine(text_model()), max_string_elements=16, max_body_bytes=4096)
    async with running(app) as http:
        yield http


async def test_json_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=json_request(WORDS))
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert outputs["shout"] == {"name": "shout", "datatype": "BYTES", "shape": [4],
                                "data": [word + "!" for word in WORDS]}  # fmt: skip
    assert outputs["same"]["data"] == WORDS


async def test_binary_round_trip(client: httpx.AsyncClient) -> None:
    body, header_length = binary_request(packed(*(w.encode() for w in WORDS)), [4])
    response = await client.post(
        URL, content=body, headers={"inference-header-content-length": header_length}
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:length])
    expected = packed(*(f"{w}!".encode() for w in WORDS))
    assert document["outputs"] == [{"name": "shout", "datatype": "BYTES", "shape": [4],
                                    "parameters": {"binary_data_size": len(expected)}}]  # fmt: skip
    assert response.content[length:] == expected


async def test_metadata_says_bytes(client: httpx.AsyncClient) -> None:
    metadata = (await client.get("/v2/models/tiny")).json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


async def test_requests_in_one_batch_keep_their_own_strings() -> None:
    async with running(replica(OnnxEngine(text_model()), max_delay_ms=50)) as http:
        import asyncio  # noqa: PLC0415 (only this test gathers)

        responses = await asyncio.gather(
            *(http.post(URL, content=json_request([f"r{i}"] * (i + 1))) for i in range(6))
        )
        metrics = (await http.get("/metrics")).text
    for index, response in enumerate(responses):
        shout = response.json()["outputs"][0]["data"]
        assert shout == [f"r{index}!"] * (index + 1)
    calls = re.search(r"ferryman_batch_size_count\{[^}]*\} ([\d.]+)", metrics)
    assert calls is not None
    assert float(calls.group(1)) < 6  # some model call took several requests


async def test_the_cache_keys_strings_by_their_bytes() -> None:
    async with running(replica(OnnxEngine(text_model()), cache_entries=8)) as http:
        for words in (["first request"], ["second request"], ["first request"]):
            response = await http.post(URL, content=json_request(words))
            assert response.json()["outputs"][0]["data"] == [words[0] + "!"]
        metrics = (await http.get("/metrics")).text
    assert re.search(r'ferryman_cache_requests_total\{[^}]*result="hit"[^}]*\} 1\.0', metrics)
    assert re.search(r'ferryman_cache_requests_total\{[^}]*result="miss"[^}]*\} 2\.0', metrics)


async def test_payload_records_keep_sampled_text_inputs() -> None:
    app = replica(OnnxEngine(text_model()), payload_input_sample_rate=1.0)
    async with running(app) as http:
        await http.post(URL, content=json_request(["kept"]))
        records = (await http.get("/ferryman/v1/payloads")).json()["records"]
    assert records[-1]["inputs"] == {"text": {"dtype": "object", "shape": [1], "data": ["kept"]}}


BAD = [
    ("number in BYTES", json_request(["a", 1]), "element 1 is '1' (int)"),
    ("lone surrogate", b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", '
                       b'"data": ["\\ud800"]}]}', "lone UTF-16 surrogate"),
    ("invalid UTF-8 JSON", json_request(["ok"]).replace(b"ok", b"o\xffk"), "not valid UTF-8"),
    ("count differs", json_request(["a", "b"], shape=[3]), "has 2 values; its shape needs 3"),
    ("too many elements", json_request(["a"] * 17), "more than the 16 elements"),
    ("huge shape", json_request(["a"], shape=[2**62]), "more than the 16 elements"),
    ("wrong datatype", json_request(["a"]).replace(b"BYTES", b"FP32"), "expects text BYTES"),
]  # fmt: skip
BAD_BINARY = [
    ("truncated", packed(b"abc")[:-1], [1], "declares 3 bytes"),
    ("length lies", struct.pack("<I", 2**31) + b"abc", [1], "declares 2147483648 bytes"),
    ("extra bytes", packed(b"a") + b"zz", [1], "2 bytes follow"),
    ("invalid UTF-8", packed(b"\xc3\x28"), [1], "element 0 is not valid UTF-8"),
    ("too few bytes for the count", packed(b"a"), [3], "need at least 12 bytes"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[c[0] for c in BAD])
async def test_bad_json_bytes_get_400(
    client: httpx.AsyncClient, case: str, body: bytes, message: str
) -> None:
    response = await client.post(URL, content=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(("case", "tail", "shape", "message"), BAD_BINARY,
                         ids=[c[0] for c in BAD_BINARY])  # fmt: skip
async def test_bad_binary_bytes_get_400(
    client: httpx.AsyncClient, case: str, tail: bytes, shape: list[int], message: str
) -> None:
    body, header_length = binary_request(tail, shape)
    response = await client.post(
        URL, content=body, headers={"inference-header-content-length": header_length}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error
    assert "input 'text'" in error


async def test_too_large_a_body_is_413_and_nothing_is_5xx(client: httpx.AsyncClient) -> None:
    big = await client.post(URL, content=json_request(["x" * 5000]))
    assert big.status_code == 413
    for _, body, _ in BAD:
        await client.post(URL, content=body)
    after = await client.post(URL, content=json_request(["still fine"]))
    assert after.json()["outputs"][0]["data"] == ["still fine!"]
    metrics = (await client.get("/metrics")).text
    assert 'code="5' not in metrics


async def test_the_other_predict_apis_take_text_or_say_why_not(client: httpx.AsyncClient) -> None:
    tf = await client.post("/v1/models/tiny:predict", json={"instances": ["Ok", "é"]})
    assert tf.status_code == 200, tf.text
    assert tf.json() == {"predictions": [{"shout": "Ok!", "same": "Ok"},
                                         {"shout": "é!", "same": "é"}]}  # fmt: skip
    plain = await client.post("/predict", json={"rows": ["a"]})
    assert plain.status_code == 400
    assert "has no class output" in plain.json()["error"]
    assert "use /v2/models/tiny/infer" in plain.json()["error"]
