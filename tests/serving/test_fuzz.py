"""RELIABILITY B1 on the data plane: generated requests against a real replica, never a 5xx.

The replica publishes no OpenAPI of its own, and a hand-written one would be a second copy of
the protocol that drifts, and could not say the inputs that matter here anyway: binary-tensor
framing whose declared lengths lie, invalid UTF-8, arbitrary methods and paths. So Hypothesis
writes the requests from the V2 protocol's own vocabulary, and each goes over real HTTP to
uvicorn serving a tiny ONNX model. Every answer must be below 500, and every error a JSON
``{"error": "..."}``; every 200 from inference a V2 response.

By default a few hundred seeded examples per model (seconds); ``-m soak`` runs 2 000 per
model and request kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ferryman.engines.onnx import OnnxEngine
from tests.serving.conftest import affine_model, replica, serving_in_thread, text_model

MODELS = {"affine": (affine_model, "x", ["y", "p"]), "text": (text_model, "text", ["shout"])}
DATATYPES = ["BOOL", "UINT8", "INT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "FP8"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
PATHS = [
    "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/tiny", "/v2/models/tiny/ready",
    "/v2/models/tiny/versions/3", "/v2/models/tiny/versions/3/ready", "/v2/models/tiny/infer",
    "/v2/models/tiny/versions/3/infer", "/v1/models/tiny:predict", "/predict", "/metrics",
    "/ferryman/v1/payloads", "/", "/v2/models/", "/v2/models//infer",
]  # fmt: skip
FIELDS = ["name", "datatype", "shape", "data", "parameters"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
dims = st.integers(-2, 6) | st.sampled_from([0, 2**31 - 1, 2**63 - 1, 2**64, -(2**63)])
numbers = st.integers(-(2**70), 2**70) | st.floats() | st.booleans() | st.text(max_size=4)
header_values = st.lists(st.integers(0x20, 0xFF).filter(lambda b: b != 0x7F), max_size=12).map(
    lambda octets: bytes(octets).strip(b" ")
)
"""What HTTP lets a header value be, invalid UTF-8 included (visible octets, inner spaces)."""
strings = st.text(max_size=6) | st.binary(max_size=6).map(lambda b: b.decode("latin-1"))
wrong = {
    "name": st.text(max_size=6) | json_values,
    "datatype": st.sampled_from(DATATYPES) | st.text(max_size=6) | json_values,
    "shape": st.lists(dims, max_size=4) | json_values,
    "data": st.lists(numbers | strings, max_size=12) | json_values,
    "parameters": st.fixed_dictionaries(
        {"binary_data_size": st.integers(-5, 64) | st.sampled_from([2**31, 2**64]) | json_values}
    ) | json_values,
}  # fmt: skip


@st.composite
def v2_input(draw: st.DrawFn, model: str) -> tuple[dict[str, Any], bytes]:
    """A right input tensor for ``model`` (as JSON or as binary) with up to two fields wrong.

    Returns the tensor and the raw bytes it puts in the binary tail (none for JSON).
    """
    rows = draw(st.integers(1, 3))
    if model == "affine":
        values: list[Any] = draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=rows * 4,
                                          max_size=rows * 4))  # fmt: skip
        tensor: dict[str, Any] = {"name": "x", "datatype": "FP32", "shape": [rows, 4]}
        raw = np.array(values, dtype="<f4").tobytes()
    else:
        values = draw(st.lists(strings, min_size=rows, max_size=rows))
        tensor = {"name": "text", "datatype": "BYTES", "shape": [rows]}
        encoded = [v.encode("utf-8", "surrogatepass") for v in values]
        raw = b"".join(len(e).to_bytes(4, "little") + e for e in encoded)
    tail = b""
    if draw(st.booleans()):
        tensor["parameters"] = {"binary_data_size": len(raw)}
        tail = raw if draw(st.integers(0, 4)) < 4 else draw(st.binary(max_size=len(raw) + 8))
    else:
        tensor["data"] = values
    broken = draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True))
    for field in broken if draw(st.booleans()) else []:
        if draw(st.integers(0, 3)) == 0:
            tensor.pop(field, None)
        else:
            tensor[field] = draw(wrong[field])
    return tensor, tail


@st.composite
def v2_request(draw: st.DrawFn, model: str) -> tuple[dict[str, bytes], bytes]:
    """Headers and body of an inference request: right, nearly right, or any bytes at all."""
    kind = draw(st.sampled_from(["v2"] * 6 + ["any json", "bytes"]))
    if kind == "any json":
        return {}, json.dumps(draw(json_values)).encode()
    if kind == "bytes":  # mostly invalid UTF-8
        return {}, draw(st.binary(max_size=64))
    _, input_name, outputs = MODELS[model]
    names = [input_name, *outputs]
    inputs = draw(st.lists(v2_input(model), min_size=1, max_size=2))
    document: dict[str, Any] = {"inputs": [tensor for tensor, _ in inputs]}
    if draw(st.booleans()):
        output = st.fixed_dictionaries(
            {"name": st.sampled_from(names) | st.text(max_size=4)},
            optional={"parameters": st.fixed_dictionaries({"binary_data": st.booleans()})
                      | json_values},
        )  # fmt: skip
        document["outputs"] = draw(st.lists(output, max_size=3))
    if draw(st.integers(0, 4)) == 4:
        field = draw(st.sampled_from(["id", "parameters", "evil"]))
        document[field] = draw(st.text(max_size=8) if field == "id" else json_values)
    head = json.dumps(document).encode()
    tail = b"".join(raw for _, raw in inputs)
    if not tail and draw(st.booleans()):
        return {}, head
    declared = b"%d" % len(head) if draw(st.integers(0, 5)) < 5 else draw(
        st.integers(-3, len(head) + 80).map(lambda n: b"%d" % n)
        | st.sampled_from([b"", b"x", b"1e3", b"99999999999999999999", b"\xb2", b"\xff"])
    )  # fmt: skip
    return {"inference-header-content-length": declared}, head + tail


@st.composite
def any_request(draw: st.DrawFn) -> tuple[str, str, dict[str, bytes], bytes]:
    """Any method on a known path, or on one with a segment replaced by arbitrary text."""
    path = draw(st.sampled_from(PATHS))
    if draw(st.booleans()):
        parts = path.split("/")
        index = draw(st.integers(1, len(parts) - 1))
        segment = st.text(max_size=8).map(lambda text: quote(text, safe=""))
        parts[index] = draw(segment | st.sampled_from(["%FF", "%C0%AF", "..", "%00", "%2F"]))
        path = "/".join(parts)
    headers = draw(st.dictionaries(st.sampled_from(["content-type", "accept", "x-any"]),
                                   header_values, max_size=2))  # fmt: skip
    query = draw(st.sampled_from(["", "?after=1&limit=2", "?after=-1", "?limit=" + "9" * 30]))
    return draw(st.sampled_from(METHODS)), path + query, headers, draw(st.binary(max_size=32))


@pytest.fixture(scope="module", params=list(MODELS))
def live(request: pytest.FixtureRequest) -> Iterator[tuple[str, httpx.Client]]:
    build = MODELS[request.param][0]
    app = replica(OnnxEngine(build()), max_body_bytes=64 * 1024)
    with (
        serving_in_thread(app) as running,
        httpx.Client(base_url=f"http://{running.address}", timeout=10) as http,
    ):
        yield request.param, http


def check(response: httpx.Response, method: str) -> None:
    """Below 500; an error is ``{"error": str}``; a JSON 200 from inference is V2-shaped."""
    what = f"{method} {response.request.url} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, what
    if method == "HEAD":
        return
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), what
        body = response.json()
        assert isinstance(body, dict), what
        assert list(body) == ["error"], what
        assert isinstance(body["error"], str), what
        assert body["error"], what
    elif response.request.url.path.endswith("/infer") and response.status_code == 200:
        head = response.content  # a binary answer: the JSON head, then the tensors' bytes
        if "inference-header-content-length" in response.headers:
            head = head[: int(response.headers["inference-header-content-length"])]
        assert {"model_name", "outputs"} <= set(json.loads(head)), what


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples, derandomize=True, database=None, deadline=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip


def infer_examples(live: tuple[str, httpx.Client], examples: int) -> None:
    model, http = live

    @fuzz_settings(examples)
    @given(request=v2_request(model), versioned=st.booleans())
    def infer(request: tuple[dict[str, bytes], bytes], versioned: bool) -> None:
        headers, body = request
        path = "/v2/models/tiny/versions/3/infer" if versioned else "/v2/models/tiny/infer"
        check(http.post(path, content=body, headers=headers), "POST")  # type: ignore[arg-type]  # httpx sends bytes values; its types take str or bytes pairs only

    infer()


def route_examples(live: tuple[str, httpx.Client], examples: int) -> None:
    _, http = live

    @fuzz_settings(examples)
    @given(request=any_request())
    def anything(request: tuple[str, str, dict[str, bytes], bytes]) -> None:
        method, path, headers, body = request
        content = body if method not in ("GET", "HEAD") else None
        check(http.request(method, path, content=content, headers=headers), method)  # type: ignore[arg-type]  # as above

    anything()


def test_generated_inference_requests_never_get_a_5xx(live: tuple[str, httpx.Client]) -> None:
    infer_examples(live, 300)


def test_generated_methods_and_paths_never_get_a_5xx(live: tuple[str, httpx.Client]) -> None:
    route_examples(live, 200)


@pytest.mark.soak
def test_soak_2000_generated_requests_of_each_kind(live: tuple[str, httpx.Client]) -> None:
    infer_examples(live, 2000)
    route_examples(live, 2000)
