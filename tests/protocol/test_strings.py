"""BYTES tensors: JSON strings and length-prefixed binary elements, to text arrays and back."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

from ferryman.errors import InvalidInput
from ferryman.protocol import codecs, strings
from ferryman.protocol.v2 import InferenceRequest
from ferryman.signature import Signature, TensorSpec

TEXT = TensorSpec(name="text", datatype="BYTES", shape=None)
SIGNATURE = Signature(inputs=(TEXT,), outputs=(TEXT,))
LIMITS = codecs.TensorLimits(max_elements=10_000, max_string_elements=4)
WORDS = ["", "plain", "Ärger", "日本語 😀"]


def packed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def decode(item: dict[str, object], binary: bytes = b"") -> np.ndarray:
    inference = InferenceRequest.model_validate({"inputs": [{"name": "text", **item}]})
    specs = codecs.input_specs(SIGNATURE)
    return codecs.decode_inputs(inference, memoryview(binary), specs, LIMITS)["text"]


def test_json_strings_become_a_text_array() -> None:
    array = decode({"shape": [2, 2], "datatype": "BYTES", "data": WORDS})
    assert array.dtype == object
    assert array.shape == (2, 2)
    assert array.ravel().tolist() == WORDS


def test_nested_json_strings_are_read_in_row_major_order() -> None:
    array = decode({"shape": [2, 2], "datatype": "BYTES", "data": [WORDS[:2], WORDS[2:]]})
    assert array.ravel().tolist() == WORDS


def test_binary_elements_become_a_text_array() -> None:
    body = packed(*(word.encode() for word in WORDS))
    item: dict[str, object] = {
        "shape": [4],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(body)},
    }
    assert decode(item, body).tolist() == WORDS


def test_outputs_go_back_as_json_strings_or_length_prefixed_bytes() -> None:
    array = np.array(WORDS, dtype=object).reshape(2, 2)
    assert strings.to_json("y", array) == WORDS
    assert strings.to_binary(array) == packed(*(word.encode() for word in WORDS))
    assert strings.to_json("y", np.array([b"raw"], dtype=object)) == ["raw"]
    assert strings.to_binary(np.array(["ab", "c"])) == packed(b"ab", b"c")  # numpy unicode


def test_response_of_text_outputs_in_both_forms() -> None:
    arrays = {"text": np.array(["a", "bc"], dtype=object)}
    for is_binary in (False, True):
        response, tail = codecs.build_response(
            ("m", "1", "r"), arrays, [codecs.OutputChoice("text", is_binary)]
        )
        (output,) = response["outputs"]
        assert (output["datatype"], output["shape"]) == ("BYTES", [2])
        if is_binary:
            assert tail == [packed(b"a", b"bc")]
            assert output.get("parameters") == {"binary_data_size": 11}
        else:
            assert output.get("data") == ["a", "bc"]


BAD_BINARY = [
    ("truncated length", [3], b"\x01\x00\x00\x00a\x01\x00", "need at least 12 bytes"),
    ("no length left", [2], packed(b"abcd") + b"\x00\x00", "element 1 of 2 has no length"),
    ("length past the end", [1], struct.pack("<I", 99) + b"abc", "declares 99 bytes"),
    ("huge length", [1], struct.pack("<I", 2**32 - 1) + b"", "declares 4294967295 bytes"),
    ("bytes after the elements", [1], packed(b"a") + b"zz", "2 bytes follow its 1 elements"),
    ("invalid UTF-8", [2], packed(b"ok", b"\xff\xfe"), "element 1 is not valid UTF-8"),
    ("more elements than bytes", [4], packed(b"a"), "4 BYTES elements need at least 16"),
]


@pytest.mark.parametrize(("case", "shape", "body", "message"), BAD_BINARY,
                         ids=[c[0] for c in BAD_BINARY])  # fmt: skip
def test_bad_binary_elements_are_refused(
    case: str, shape: list[int], body: bytes, message: str
) -> None:
    item: dict[str, object] = {
        "shape": shape,
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(body)},
    }
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        decode(item, body)
    assert "input 'text'" in caught.value.message


BAD_JSON = [
    ("number element", {"shape": [2], "data": ["a", 3]}, "element 1 is '3' (int)"),
    ("object element", {"shape": [1], "data": [{"a": 1}]}, "needs strings"),
    ("count differs", {"shape": [3], "data": ["a", "b"]}, "has 2 values; its shape needs 3"),
    ("lone surrogate", {"shape": [1], "data": ["\ud800"]}, "lone UTF-16 surrogate"),
    ("too many", {"shape": [5], "data": ["a"] * 5}, "more than the 4 elements"),
    ("negative size", {"shape": [1], "parameters": {"binary_data_size": -1}}, "byte count"),
]


@pytest.mark.parametrize(("case", "item", "message"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_bad_json_elements_are_refused(case: str, item: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        decode({"datatype": "BYTES", **item})
    assert "input 'text'" in caught.value.message


def test_declared_count_is_checked_before_anything_is_allocated() -> None:
    item: dict[str, object] = {
        "shape": [2**62],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": 8},
    }
    with pytest.raises(InvalidInput, match="more than the 4 elements"):
        decode(item, packed(b"abcd"))


def test_output_bytes_that_are_not_text_cannot_be_json() -> None:
    with pytest.raises(InvalidInput, match=r"element 1 is not UTF-8 text.*binary_data"):
        strings.to_json("y", np.array([b"ok", b"\xff"], dtype=object))
    assert strings.to_binary(np.array([b"\xff"], dtype=object)) == packed(b"\xff")


def test_content_bytes_count_the_encoded_text() -> None:
    assert strings.content_bytes(np.array(["é", b"ab"], dtype=object)) == 4
