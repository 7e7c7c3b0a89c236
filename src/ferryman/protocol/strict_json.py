"""Strict JSON for request bodies: UTF-8 only, no NaN or Infinity, no duplicate keys.

orjson parses (it already refuses invalid UTF-8, NaN and nesting past 1024); a count of the
keys it kept against the keys written in the text catches duplicates. Anything it refuses
or doubts is parsed again by the strict standard-library parser, which names the problem
precisely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from ferryman.errors import InvalidInput


def parse_json(
    body: bytes | memoryview,
    what: str = "request body",
    some_keys: Callable[[Any], int] | None = None,
) -> Any:
    """Parse strict JSON: UTF-8 only, no NaN/Infinity, no duplicate keys, bounded depth.

    orjson parses (it already refuses invalid UTF-8, NaN and nesting past 1024); a count of
    the keys it kept against the keys written in the text catches duplicates. Anything it
    refuses or doubts is parsed again by the strict standard-library parser, which names
    the problem precisely.

    Every written key is followed by its own colon, so the text has at least as many colons
    as written keys, and the parser keeps at most as many keys as were written: when the
    colons equal a count of kept keys there is no duplicate. ``some_keys`` may count only
    the keys where a document of the expected shape has them (never more than were kept):
    when that proof fails, every kept key is counted, and the written keys by a regular
    expression over the whole body (needed only when some string holds a colon).
    """
    raw = body if isinstance(body, bytes) else bytes(body)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _parse_strictly(raw, what)
    colons = raw.count(b":")
    if colons != (some_keys or _count_keys)(document):
        kept = _count_keys(document)
        if colons != kept and _count_written_keys(raw) != kept:
            return _parse_strictly(raw, what)
    return document


_STRING_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?')


def _count_written_keys(raw: bytes) -> int:
    """Keys in JSON text: string tokens followed by a colon (quotes only occur in strings)."""
    colons = _STRING_TOKEN.findall(raw)  # the colon group: empty for string values
    return len(colons) - colons.count(b"")


def _count_keys(document: Any) -> int:
    """Keys kept by the parser. Lists whose first item is a scalar (tensor data) are not
    walked: one that hides an object further on is refused later as a tensor anyway."""
    count, stack = 0, [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            count += len(value)
            stack.extend(v for v in value.values() if isinstance(v, (dict, list)))
        elif value and isinstance(value[0], (dict, list)):
            stack.extend(v for v in value if isinstance(v, (dict, list)))
    return count


def _parse_strictly(body: bytes, what: str) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid UTF-8 (bad byte at offset {exc.start}); send UTF-8 JSON"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(f"{what} nests JSON too deeply; send flat tensors") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise InvalidInput(f"JSON object has the key {duplicate!r} twice; send each key once")
    return result


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"JSON contains {name}, which JSON does not allow; send finite numbers")
