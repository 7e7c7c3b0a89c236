"""BYTES tensors: the Open Inference Protocol's variable-length elements, held as text.

The wire forms: in JSON each element is a string (JSON text is UTF-8, so an element is
UTF-8 text); in the binary form (the binary tensor data extension's body, gRPC's
``raw_input_contents``) each element is a 4-byte little-endian unsigned length followed by
that many bytes; gRPC's typed form lists them in ``bytes_contents``.

Inside a replica a BYTES tensor is a numpy object array of ``str``. ONNX string tensors are
UTF-8 text, and ONNX Runtime's Python binding takes ``str`` elements (a ``bytes`` element
reaches the model as its repr, ``"b'...'"``), so an element that is not UTF-8 is refused
here with a 400 that names the input and the element, before any model work.

No allocation follows a declared size before the bytes behind it were seen: each element
takes at least 4 bytes in the binary form, so the element count is checked against the
bytes given before the array is made, and each length against the bytes left before it is
sliced.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ferryman.errors import InvalidInput

LENGTH_BYTES = 4
"""Bytes of the length before each element in the binary form."""
_LENGTH = struct.Struct("<I")
TEXT_KINDS = "OSU"
"""numpy kinds a BYTES tensor may come back from a model as: objects, bytes, unicode."""


def from_json(name: str, data: object, count: int) -> np.ndarray:
    """JSON (or gRPC ``bytes_contents``) elements as a flat object array of ``count`` str.

    ``data`` may be flat or nested as the tensor's natural shape; every leaf must be a
    string (``bytes`` from gRPC are decoded as UTF-8).
    """
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r} is BYTES and needs a list of strings for data")
    leaves = data if _is_flat_text(data) else _flatten(name, data)
    if len(leaves) != count:
        raise InvalidInput(f"input {name!r} has {len(leaves)} values; its shape needs {count}")
    array = np.empty(count, dtype=object)
    for index, value in enumerate(leaves):
        array[index] = _text(name, index, value)
    return array


def _is_flat_text(data: list[Any]) -> bool:
    return all(type(value) is str for value in data)


def _flatten(name: str, data: list[Any]) -> list[Any]:
    """The leaves of nested lists in row-major order (depth bounded by the JSON parser)."""
    leaves: list[Any] = []
    stack = [iter(data)]
    while stack:
        value = next(stack[-1], _END)
        if value is _END:
            stack.pop()
        elif isinstance(value, list):
            stack.append(iter(value))
        else:
            leaves.append(value)
    return leaves


_END = object()


def _text(name: str, index: int, value: object) -> str:
    if isinstance(value, bytes):
        return _decoded(name, index, value)
    if not isinstance(value, str):
        raise InvalidInput(
            f"input {name!r} is BYTES and needs strings; element {index} is "
            f"{str(value)[:32]!r} ({type(value).__name__}); send each element as a string"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            raise InvalidInput(
                f"input {name!r}: element {index} holds a lone UTF-16 surrogate escape, "
                "which is not Unicode text; send valid UTF-8"
            ) from None
    return value


def _decoded(name: str, index: int, raw: bytes | memoryview) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"input {name!r}: element {index} is not valid UTF-8 (bad byte at offset "
            f"{exc.start}); ONNX string tensors hold UTF-8 text"
        ) from None


def from_binary(name: str, raw: memoryview, count: int) -> np.ndarray:
    """``count`` length-prefixed elements filling ``raw`` exactly, as a flat array of str."""
    size = len(raw)
    if count * LENGTH_BYTES > size:
        raise InvalidInput(
            f"input {name!r}: {count} BYTES elements need at least {count * LENGTH_BYTES} "
            f"bytes (a {LENGTH_BYTES}-byte length each); its binary_data_size is {size}"
        )
    array = np.empty(count, dtype=object)
    offset = 0
    for index in range(count):
        if size - offset < LENGTH_BYTES:
            raise InvalidInput(
                f"input {name!r}: element {index} of {count} has no length; the tensor's "
                f"{size} bytes end at offset {offset}"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += LENGTH_BYTES
        if length > size - offset:
            raise InvalidInput(
                f"input {name!r}: element {index} declares {length} bytes, but only "
                f"{size - offset} of the tensor's {size} bytes are left"
            )
        array[index] = _decoded(name, index, raw[offset : offset + length])
        offset += length
    if offset != size:
        raise InvalidInput(
            f"input {name!r}: {size - offset} bytes follow its {count} elements; "
            "binary_data_size must cover exactly the lengths and bytes of its elements"
        )
    return array


def to_json(name: str, array: np.ndarray) -> list[str]:
    """A model's BYTES output as JSON strings, flat in row-major order."""
    values: list[Any] = array.ravel().tolist()
    for index, value in enumerate(values):
        if not isinstance(value, str):
            values[index] = _output_text(name, index, value)
    return values


def _output_text(name: str, index: int, value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"output {name!r}: element {index} is not UTF-8 text, which JSON cannot "
                'carry; ask for it as binary data ("binary_data": true)'
            ) from None
    return str(value)


def to_binary(array: np.ndarray) -> bytes:
    """A model's BYTES output in the binary form: each element's length, then its bytes."""
    parts: list[bytes] = []
    for value in array.ravel().tolist():
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def content_bytes(array: np.ndarray) -> int:
    """Bytes a BYTES tensor's elements hold (their UTF-8 encoding), for size caps."""
    return sum(
        len(value) if isinstance(value, bytes) else len(str(value).encode("utf-8"))
        for value in array.ravel().tolist()
    )
