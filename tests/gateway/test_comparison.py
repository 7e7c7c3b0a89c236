"""How shadow answers are judged (pure)."""

from __future__ import annotations

import json

import pytest

from ferryman.gateway.comparison import compare
from ferryman.gateway.messages import Answer


def v2(*data: float, name: str = "p", model: str = "m") -> Answer:
    outputs = [{"name": name, "datatype": "FP32", "shape": [1, len(data)], "data": list(data)}]
    return Answer(200, [], json.dumps({"model_name": model, "outputs": outputs}).encode())


@pytest.mark.parametrize(
    ("primary", "shadow", "outcome"),
    [
        (v2(0.1, 0.9), v2(0.1, 0.9), "equal"),
        (v2(0.1, 0.9), v2(0.1, 0.9, model="other"), "close"),
        (v2(0.1, 0.9), v2(0.1002, 0.8999), "close"),
        (v2(0.1, 0.9), v2(0.3, 0.7), "same_argmax"),
        (v2(0.1, 0.9), v2(0.9, 0.1), "different"),
        (v2(0.1, 0.9), v2(0.1, 0.9, 0.0), "different"),
        (v2(0.1, 0.9), v2(0.1, 0.9, name="q"), "different"),
        (v2(0.1, 0.9), Answer(500, [], b'{"error": "x"}'), "status_differs"),
        (None, v2(0.1), "primary_failed"),
        (Answer(200, [], b"not json"), Answer(200, [], b"nor this"), "different"),
        (
            Answer(200, [], b'{"rows": [1, 2]}'),
            Answer(200, [], b'{"rows": [1, 2.0000001]}'),
            "close",
        ),
        (Answer(200, [], b'{"label": "a"}'), Answer(200, [], b'{"label": "b"}'), "different"),
        (Answer(200, [], b"[" * 100_000), Answer(200, [], b"[" * 100_001), "different"),
    ],
)
def test_outcomes(primary: Answer | None, shadow: Answer, outcome: str) -> None:
    assert compare(primary, shadow, tolerance=1e-3) == outcome
