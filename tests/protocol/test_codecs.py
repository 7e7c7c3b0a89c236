"""Codecs at the edge: V2 requests, tensors to arrays and back, binary tensors."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from ferryman.errors import InvalidInput
from ferryman.protocol import codecs
from ferryman.protocol.v2 import InferenceRequest
from ferryman.signature import Signature, TensorSpec

X = TensorSpec(name="x", datatype="FP32", shape=(-1, 2))
IDS = TensorSpec(name="ids", datatype="INT64", shape=None)
LIMITS = codecs.TensorLimits(max_elements=1000, max_string_elements=100)
SIGNATURE = Signature(
    inputs=(X, IDS), outputs=(TensorSpec(name="y", datatype="FP32", shape=(-1,)),)
)
SPECS = codecs.input_specs(SIGNATURE)


def request(**document: object) -> InferenceRequest:
    return InferenceRequest.model_validate(document)


def test_decode_json_and_binary_inputs_together() -> None:
    ids = np.array([[7, 8, 9]], dtype=np.int64)
    inference = request(inputs=[
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]},
        {"name": "ids", "shape": [1, 3], "datatype": "INT64",
         "parameters": {"binary_data_size": ids.nbytes}},
    ])  # fmt: skip
    arrays = codecs.decode_inputs(inference, memoryview(ids.tobytes()), SPECS, LIMITS)
    assert arrays["x"].dtype == np.float32
    np.testing.assert_array_equal(arrays["x"], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(arrays["ids"], ids)


def test_unclaimed_binary_bytes_are_refused() -> None:
    inference = request(inputs=[
        {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
        {"name": "ids", "shape": [1], "datatype": "INT64", "data": [1]},
    ])  # fmt: skip
    with pytest.raises(InvalidInput, match="4 binary bytes that no input claims"):
        codecs.decode_inputs(inference, memoryview(b"\0" * 4), SPECS, LIMITS)


def test_declared_size_is_checked_with_python_integers() -> None:
    with pytest.raises(InvalidInput, match="more than the 1000 elements"):
        codecs.check_tensor("ids", "INT64", [2**62, 2**62, 2**62], IDS, LIMITS)


def test_header_length_outside_the_body() -> None:
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length is 99"):
        codecs.parse_inference_request(b"{}", 99)


def test_choose_outputs_binary_by_default_or_per_output() -> None:
    everything = request(inputs=[{"name": "x", "shape": [0, 2], "datatype": "FP32", "data": []}],
                         parameters={"binary_data_output": True})  # fmt: skip
    assert codecs.choose_outputs(everything, SIGNATURE) == [codecs.OutputChoice("y", True)]
    named = request(inputs=everything.inputs, outputs=[{"name": "y"}])
    assert codecs.choose_outputs(named, SIGNATURE) == [codecs.OutputChoice("y", False)]


def test_response_documents_omit_what_is_absent() -> None:
    arrays: dict[str, np.ndarray] = {
        "y": np.array([1.5, 2.5], dtype=np.float32), "z": np.array([[1]], dtype=np.int8)
    }  # fmt: skip
    choices = [codecs.OutputChoice("y", False), codecs.OutputChoice("z", True)]
    response, tail = codecs.build_response(("m", "1", "r"), arrays, choices)
    document = json.loads(codecs.encode_response(response))
    assert document["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [2], "data": [1.5, 2.5]},
        {"name": "z", "datatype": "INT8", "shape": [1, 1], "parameters": {"binary_data_size": 1}},
    ]
    assert tail == [b"\x01"]


def test_float16_outputs_are_written_as_numbers() -> None:
    response, _ = codecs.build_response(
        ("m", "1", "r"), {"y": np.array([0.5], dtype=np.float16)}, [codecs.OutputChoice("y", False)]
    )
    assert orjson.loads(codecs.encode_response(response))["outputs"][0]["data"] == [0.5]


INPUT = '{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"inputs": [' + INPUT + '], "inputs": [' + INPUT + "]}", "inputs"),
        ('{"inputs": [' + INPUT.replace('"data"', '"shape": [2], "data"') + "]}", "shape"),
        ('{"inputs": [' + INPUT + '], "parameters": {"a": 1, "a": 2}}', "a"),
        ('{"inputs": [' + INPUT + '], "outputs": [{"name": "y", "name": "z"}]}', "name"),
        ('{"inputs": [' + INPUT.replace("[1, 2]}", '[{"k": 1, "k": 2}, 2]}') + "]}", "k"),
    ],
    ids=["top level", "in an input", "in parameters", "in an output", "inside data"],
)
def test_duplicate_keys_anywhere_in_a_v2_request_are_refused(text: str, key: str) -> None:
    with pytest.raises(InvalidInput, match=f"key '{key}' twice"):
        codecs.parse_inference_request(text.encode(), None)


def test_colons_in_strings_do_not_hide_or_fake_a_duplicate() -> None:
    text = '{"id": "a:b:c", "inputs": [' + INPUT.replace('"x"', '"x:y"') + "]}"
    inference, _ = codecs.parse_inference_request(text.encode(), None)
    assert (inference.id, inference.inputs[0].name) == ("a:b:c", "x:y")
    with pytest.raises(InvalidInput, match="key 'id' twice"):
        codecs.parse_inference_request(text.replace('"id"', '"id": "q", "id"', 1).encode(), None)


LARGE = TensorSpec(name="image", datatype="FP32", shape=(-1, 3, 32, 32))
LARGE_SPECS = {"image": LARGE}
LARGE_LIMITS = codecs.TensorLimits(max_elements=1 << 20, max_string_elements=100)


def _large_body(data: object, **extra: object) -> bytes:
    return json.dumps({"id": "r1", "inputs": [{"name": "image", "shape": [8, 3, 32, 32],
                       "datatype": "FP32", "data": data}], **extra}).encode()  # fmt: skip


def _both_ways(body: bytes) -> tuple[object, object]:
    """What the set-aside path and the plain path make of ``body``: arrays or the error."""
    outcomes: list[object] = []
    for read in (codecs.read_inference_request, _plain_read):
        try:
            inference, binary, large = read(body, None)
            arrays = codecs.decode_inputs(inference, binary, LARGE_SPECS, LARGE_LIMITS, large)
            outcomes.append(arrays["image"])
        except InvalidInput as exc:
            outcomes.append(exc.message)
    return outcomes[0], outcomes[1]


def _plain_read(
    body: bytes, header_length: int | None
) -> tuple[InferenceRequest, memoryview, dict[int, object]]:
    inference, binary = codecs.parse_inference_request(body, header_length)
    return inference, binary, {}


def test_a_large_json_tensor_is_read_straight_into_numpy_alike() -> None:
    values = np.random.default_rng(3).random((8, 3, 32, 32), dtype=np.float32)
    body = _large_body(values.ravel().tolist())
    inference, _, large = codecs.read_inference_request(body, None)
    assert set(large) == {0}  # set aside: no Python float per element
    assert inference.id == "r1"
    fast, plain = _both_ways(body)
    assert isinstance(fast, np.ndarray)
    assert isinstance(plain, np.ndarray)
    assert fast.dtype == np.float32
    assert fast.shape == (8, 3, 32, 32)
    np.testing.assert_array_equal(fast, values)
    np.testing.assert_array_equal(fast, plain)


@pytest.mark.parametrize(
    "data",
    [
        ["0.5"] * 24576,  # strings in an FP32 tensor
        [True] * 24576,  # booleans
        [0.5] * 24575 + [None],  # a null
        [0.5] * 24575,  # one value short of the shape
        [0.5] * 24574 + [[0.5, 0.5]],  # ragged
        [1e39] * 24576,  # beyond float32
    ],
)
def test_bad_large_json_tensors_are_refused_as_before(data: list[object]) -> None:
    fast, plain = _both_ways(_large_body(data))
    assert isinstance(fast, str)
    assert fast == plain


def test_a_duplicate_key_in_a_large_body_is_refused_as_before() -> None:
    body = _large_body([0.5] * 24576).replace(b'"id": "r1"', b'"id": "r1", "id": "r2"')
    fast, plain = _both_ways(body)
    assert isinstance(fast, str)
    assert "twice" in fast
    assert fast == plain
