"""Strict JSON: what orjson lets through and the standard library names precisely."""

from __future__ import annotations

import json

import pytest

from ferryman.errors import InvalidInput
from ferryman.protocol.strict_json import parse_json


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a": 1, "a": 2}', "key 'a' twice"),
        (b'{"a": [{"b": 1, "b": 2}]}', "key 'b' twice"),
        (b'{"x": "q\\": 1", "x": 2}', "key 'x' twice"),
        (b"[NaN]", "NaN"),
        (b"[" * 5000 + b"]" * 5000, "too deeply"),
        (b'"\xc3\x28"', "not valid UTF-8 (bad byte at offset 1)"),
        (b"{", "not valid JSON"),
    ],
)
def test_strict_json(text: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_json(text)


@pytest.mark.parametrize(
    "text",
    [b'{"a": "\\\\", "b": [1, {"c": 2}]}', b'{"k": "x\\"y:", "j": ["a:", "b"]}', b"[1, 2]"],
)
def test_strict_json_accepts_tricky_strings(text: bytes) -> None:
    assert parse_json(text) == json.loads(text)
