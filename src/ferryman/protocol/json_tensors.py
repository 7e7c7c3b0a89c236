"""Large JSON tensors straight into numpy, without a Python object per element.

A ResNet-sized image in a V2 JSON body is 150,528 numbers (3 MB of text). Parsed the usual
way (orjson) each becomes a Python float in a list, and numpy then copies the list: ~15 ms
of CPU per request, more than a third of the model's own time. simdjson parses the body
once, and a numeric array leaves it as one buffer of doubles or integers (``as_buffer``),
which numpy takes as it is: ~3.5 ms.

:func:`split_request` gives the request document with each large ``data`` array set aside
(an empty list in its place) and those arrays by input index; :func:`numeric_array` turns
one into an array of the input's datatype, or says it cannot (then the caller converts it
the usual way, which also names what is wrong). Any doubt about the document (invalid
JSON, a duplicate key, a shape this does not expect) returns None, and the strict parser
of :mod:`ferryman.protocol.strict_json` parses the body instead: the answers to bad input
stay exactly what they were.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

LARGE_BODY_BYTES = 64 * 1024
"""Bodies from this size on take this path; below it orjson's lists cost little."""
LARGE_ARRAY = 1024
"""``data`` arrays with at least this many elements are set aside as buffers."""
_BUFFER_TYPES = {"f": ("d", np.dtype(np.float64)), "i": ("i", np.dtype(np.int64)),
                 "u": ("u", np.dtype(np.uint64))}  # fmt: skip

_simdjson: Any = None


def _parser() -> Any:
    """A new simdjson parser (one per body: a parser refuses to parse again while values
    of its last document are alive), or None when simdjson is not installed."""
    global _simdjson  # noqa: PLW0603 (imported once, on first use)
    if _simdjson is None:
        try:
            _simdjson = importlib.import_module("simdjson")
        except ImportError:
            _simdjson = False
    return _simdjson.Parser() if _simdjson else None


def split_request(body: bytes) -> tuple[dict[str, Any], dict[int, Any]] | None:
    """The V2 request document with its large ``data`` arrays set aside, and those arrays
    (simdjson arrays) by input index; None when the strict parser should parse it."""
    parser = _parser()
    if parser is None:
        return None
    simdjson = _simdjson
    try:
        root = parser.parse(body)
    except (ValueError, TypeError, RuntimeError):  # invalid, too deep: the strict one says
        return None
    if not isinstance(root, simdjson.Object) or _has_duplicates(root):
        return None
    document: dict[str, Any] = {}
    large: dict[int, Any] = {}
    for key in root:  # items() would convert every value to Python
        value = root[key]
        if key != "inputs" or not isinstance(value, simdjson.Array):
            document[key] = _plain(value)
            continue
        inputs: list[Any] = []
        for index, item in enumerate(value):
            if not isinstance(item, simdjson.Object):
                inputs.append(_plain(item))
                continue
            if _has_duplicates(item):
                return None
            entry: dict[str, Any] = {}
            for name in item:
                field = item[name]
                if (
                    name == "data"
                    and isinstance(field, simdjson.Array)
                    and len(field) >= LARGE_ARRAY
                ):
                    large[index] = field
                    entry[name] = []
                else:
                    entry[name] = _plain(field)
            inputs.append(entry)
        document[key] = inputs
    return document, large


def _has_duplicates(value: Any) -> bool:
    keys = list(value.keys())
    return len(keys) != len(set(keys))


def _plain(value: Any) -> Any:
    """A simdjson value as Python values; raises ``_Duplicate`` on a repeated key."""
    simdjson = _simdjson
    if isinstance(value, simdjson.Object):
        if _has_duplicates(value):
            raise _Duplicate
        return {key: _plain(value[key]) for key in value}
    if isinstance(value, simdjson.Array):
        return [_plain(item) for item in value]
    return value


class _Duplicate(Exception):
    """A JSON object with a key twice: the strict parser names it."""


def split_request_strictly(body: bytes) -> tuple[dict[str, Any], dict[int, Any]] | None:
    """:func:`split_request` for a body of at least :data:`LARGE_BODY_BYTES`, else None."""
    if len(body) < LARGE_BODY_BYTES:
        return None
    try:
        return split_request(body)
    except (_Duplicate, RecursionError):  # deep nesting: the strict parser names it
        return None


def numeric_array(data: Any, dtype: np.dtype[Any], count: int) -> np.ndarray | None:
    """``data`` (a set-aside array) as a flat array of ``dtype``'s kind, unchecked, when it
    holds exactly ``count`` numbers of that kind at its top level; None otherwise."""
    found = _BUFFER_TYPES.get(dtype.kind)
    if found is None or len(data) != count:
        return None
    of_type, buffer_dtype = found
    try:
        raw = np.frombuffer(data.as_buffer(of_type=of_type), dtype=buffer_dtype)
    except (TypeError, ValueError):  # a value of another kind, or out of its range
        return None
    return raw if raw.size == count else None
