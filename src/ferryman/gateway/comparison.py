"""How a shadow's answer is judged against the primary's (pure; off the primary path).

Outcomes, best first:

    equal           same status and the same bytes
    close           JSON with the same structure; every number within the tolerance
    same_argmax     numbers differ beyond the tolerance, but each output's largest element
                    is at the same index (a classifier makes the same decision)
    different       anything else with the same status
    status_differs  the statuses differ
    primary_failed  the primary has no answer to compare with

Why these: a shadow is usually a new version or a quantised variant (INT8) of the one in
production. Byte equality is the cheap common case; INT8 answers are never byte-equal, so
"close" catches numerical noise, and "same_argmax" tells whether a classifier's decision
agrees, which is what rollout analysis wants to know. JSON is parsed only here, for the copy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import TypeGuard

from ferryman.gateway.messages import Answer

MAX_COMPARED_BYTES = 4 * 1024 * 1024
Outputs = dict[str, list[object]]


def compare(primary: Answer | None, shadow: Answer, tolerance: float) -> str:
    """The outcome of comparing a shadow answer with the primary's (see the module doc)."""
    if primary is None:
        return "primary_failed"
    if primary.status != shadow.status:
        return "status_differs"
    if primary.body == shadow.body:
        return "equal"
    return _compare_json(primary.body, shadow.body, tolerance)


def _compare_json(primary: bytes, shadow: bytes, tolerance: float) -> str:
    expected, actual = _outputs(primary), _outputs(shadow)
    if expected is None or actual is None or expected.keys() != actual.keys():
        return "different"
    pairs = [(expected[name], actual[name]) for name in expected]
    if any(len(a) != len(b) for a, b in pairs):
        return "different"
    if all(_close(a, b, tolerance) for a, b in pairs):
        return "close"
    if all(_argmax(a) is not None and _argmax(a) == _argmax(b) for a, b in pairs):
        return "same_argmax"
    return "different"


def _outputs(body: bytes) -> Outputs | None:
    """V2 ``outputs`` by name, else the whole document as one output; leaves flattened."""
    if len(body) > MAX_COMPARED_BYTES:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    outputs = document.get("outputs") if isinstance(document, dict) else None
    if isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs):
        return {str(o.get("name")): list(_leaves(o.get("data"))) for o in outputs}
    return {"": list(_leaves(document))}


def _leaves(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield key
            yield from _leaves(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _close(expected: list[object], actual: list[object], tolerance: float) -> bool:
    for a, b in zip(expected, actual, strict=True):
        if _is_number(a) and _is_number(b):
            if not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
                return False
        elif a != b:
            return False
    return True


def _argmax(values: list[object]) -> int | None:
    numbers = [(v, i) for i, v in enumerate(values) if _is_number(v)]
    return max(numbers)[1] if numbers else None
