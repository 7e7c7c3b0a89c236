"""Through ``ferryman gateway`` to a real ``ferryman serve`` replica, both real processes.

The first request is held by the gateway while the replica process starts (scale from
zero with a real replica), then tritonclient (JSON and binary tensors) and plain JSON work
through the gateway unmodified: it forwards bytes and rewrites only the model name.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ferryman.gateway.routes import VariantRoute
from ferryman.version import __version__
from tests.gateway.conftest import endpoint, table
from tests.support import free_port

triton = pytest.importorskip("tritonclient.http")
pytest.importorskip("ferryman.cli.serve")
serving_conftest = pytest.importorskip("tests.serving.conftest")

pytestmark = pytest.mark.e2e
FERRYMAN = str(Path(sys.executable).parent / "ferryman")


@pytest.fixture(scope="module")
def gateway_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("e2e")
    model = tmp_path / "tiny.onnx"
    model.write_bytes(serving_conftest.affine_model())
    replica_port, gateway_port = free_port(), free_port()
    variant = VariantRoute(
        name="v1-onnx",
        model="tiny",
        version=1,
        weight=100,
        backends=(f"http://127.0.0.1:{replica_port}",),
    )
    routes = tmp_path / "routes.json"
    routes.write_text(table(endpoint(variant, hold_timeout_s=60)).model_dump_json())
    data = ["--data-dir", str(tmp_path / "data")]
    commands = [
        [FERRYMAN, "gateway", "--port", str(gateway_port), "--routes-file", str(routes), *data],
        [FERRYMAN, "serve", str(model), "--name", "tiny", "--port", str(replica_port), *data],
    ]
    processes = [subprocess.Popen(command) for command in commands]
    try:
        address = f"127.0.0.1:{gateway_port}"
        wait_for_gateway(f"http://{address}/-/healthz")
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def wait_for_gateway(url: str) -> None:
    """A process on its own: poll its health, bounded (there is no event to await)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"the gateway did not answer {url} within 30 s")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_through_the_gateway(gateway_address: str, binary: bool) -> None:
    client = triton.InferenceServerClient(gateway_address, network_timeout=90)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("y", "p")]

    result = client.infer("digits", [tensor], outputs=outputs, request_id="req-9")

    np.testing.assert_allclose(result.as_numpy("y"), x * 2 + 1)
    assert result.get_response()["id"] == "req-9"
    assert client.is_model_ready("digits")
    server = client.get_server_metadata()  # GET /v2, answered by the gateway itself
    assert (server["name"], server["version"]) == ("ferryman-gateway", __version__)
    assert "binary_tensor_data" in server["extensions"]
    reply = httpx.post(
        f"http://{gateway_address}/v2/models/digits/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
    )
    assert reply.status_code == 200
    assert reply.headers["ferryman-variant"] == "v1-onnx"
    assert reply.json()["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]
