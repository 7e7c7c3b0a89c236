"""The real tritonclient[http] works unmodified against a replica, JSON and binary."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from ferryman.engines.onnx import OnnxEngine
from tests.serving.conftest import affine_model, replica, serving_in_thread, text_model


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving_in_thread(replica(OnnxEngine(affine_model()))) as running:
        yield running.address


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_round_trip(url: str, binary: bool) -> None:
    client = triton.InferenceServerClient(url)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("y", "p")]

    result = client.infer("tiny", [tensor], outputs=outputs, request_id="req-7")

    np.testing.assert_allclose(result.as_numpy("y"), x * 2 + 1)
    np.testing.assert_allclose(result.as_numpy("p").sum(axis=1), [1.0, 1.0], rtol=1e-6)
    assert result.get_response()["id"] == "req-7"


def test_health_and_metadata(url: str) -> None:
    client = triton.InferenceServerClient(url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("tiny")
    assert client.get_server_metadata()["name"] == "ferryman"
    metadata = client.get_model_metadata("tiny")
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]


def test_errors_reach_the_client(url: str) -> None:
    client = triton.InferenceServerClient(url)
    tensor = triton.InferInput("x", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"expects x FP32 \[-1, 4\]"):
        client.infer("tiny", [tensor])


@pytest.fixture(scope="module")
def text_url() -> Iterator[str]:
    with serving_in_thread(replica(OnnxEngine(text_model()))) as running:
        yield running.address


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_bytes_round_trip(text_url: str, binary: bool) -> None:
    client = triton.InferenceServerClient(text_url)
    words = np.array(["hello", "", "Ärger", "日本語 😀"], dtype=object)
    tensor = triton.InferInput("text", [4], "BYTES")
    tensor.set_data_from_numpy(words, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("shout", "same")]

    result = client.infer("tiny", [tensor], outputs=outputs)

    assert text(result.as_numpy("shout")) == [f"{w}!" for w in words]
    assert text(result.as_numpy("same")) == list(words)


def text(values: np.ndarray) -> list[str]:
    """tritonclient gives BYTES back as str from JSON and as bytes from binary data."""
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
