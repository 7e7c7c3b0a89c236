"""RELIABILITY B6: the one name validator against the path-traversal corpus."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.errors import InvalidName
from ferryman.names import validate_digest, validate_key, validate_name

TRAVERSAL_CORPUS = [
    "../x",
    "..",
    ".",
    "..%2fx",
    "%2e%2e/x",
    "%2e%2e%2fx",
    "..\\x",
    "//proc/self/root",
    "/etc/passwd",
    "file:///etc/passwd",
    "http:///#/../",
    "?a=../",
    "x\x00y",
    "\uff0e\uff0e/x",  # full-width dots
    "\uff0e\uff0e",
    "x/../../y",
    "C:\\Windows",
    "x\ny",
    " x",
    "x ",
    "",
    "a" * 64,
    "-x",
    "x-",
    "X",
    "digits\u200b",  # zero-width space
    "dígits",
]


@pytest.mark.parametrize("value", TRAVERSAL_CORPUS)
def test_names_refuse_the_traversal_corpus(value: str) -> None:
    with pytest.raises(InvalidName, match="not allowed"):
        validate_name(value, "model name")


@pytest.mark.parametrize("value", TRAVERSAL_CORPUS)
def test_keys_refuse_the_traversal_corpus(value: str) -> None:
    if value in {"X", "a" * 64}:  # keys may be uppercase and up to 128 characters
        assert validate_key(value) == value
        return
    with pytest.raises(InvalidName):
        validate_key(value)


@pytest.mark.parametrize(
    "value", [v for v in TRAVERSAL_CORPUS if v != "a" * 64] + ["AB" * 32, "g" * 64, "a" * 63]
)
def test_digests_refuse_anything_but_64_lowercase_hex(value: str) -> None:
    with pytest.raises(InvalidName, match="sha256"):
        validate_digest(value)


@pytest.mark.parametrize("value", ["digits", "d", "fraud-v2", "0", "a" * 63])
def test_good_names_pass(value: str) -> None:
    assert validate_name(value) == value


@pytest.mark.parametrize("value", ["accuracy", "val/accuracy", "f1_macro", "lr.decay", "A-1"])
def test_good_keys_pass(value: str) -> None:
    assert validate_key(value) == value


def test_error_messages_quote_the_value_safely() -> None:
    with pytest.raises(InvalidName) as raised:
        validate_name("x\x00\n" + "y" * 200)
    assert "\\x00" in raised.value.message
    assert "\n" not in raised.value.message
    assert len(raised.value.message) < 300


@given(st.text())
def test_accepted_names_are_safe_path_segments(value: str) -> None:
    try:
        validate_name(value)
    except InvalidName:
        return
    assert value.isascii()
    assert not set(value) & set("/\\.%:?#")
    assert value == value.strip()
