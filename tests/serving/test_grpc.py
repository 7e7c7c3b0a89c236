"""gRPC V2 on the same data plane: a round trip through a real grpc.aio channel."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest

from ferryman.protocol import grpc_predict_v2_pb2 as pb
from ferryman.runtimes.onnx import OnnxRuntime
from tests.serving.conftest import affine_model, replica, running

pytestmark = pytest.mark.anyio


class Stub:
    """A client of GRPCInferenceService built from the message classes alone."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        def call(name: str, response: Any) -> Any:
            return channel.unary_unary(
                f"/inference.GRPCInferenceService/{name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response.FromString,
            )

        self.ServerLive = call("ServerLive", pb.ServerLiveResponse)
        self.ServerReady = call("ServerReady", pb.ServerReadyResponse)
        self.ModelReady = call("ModelReady", pb.ModelReadyResponse)
        self.ServerMetadata = call("ServerMetadata", pb.ServerMetadataResponse)
        self.ModelMetadata = call("ModelMetadata", pb.ModelMetadataResponse)
        self.ModelInfer = call("ModelInfer", pb.ModelInferResponse)


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = replica(OnnxRuntime(affine_model()), grpc_port=port)
    async with running(app), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Stub(channel)


async def test_health_and_metadata(stub: Stub) -> None:
    assert (await stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="tiny", version="3"))).ready
    assert (await stub.ServerMetadata(pb.ServerMetadataRequest())).name == "ferryman"
    metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"))
    assert list(metadata.inputs[0].shape) == [-1, 4]
    assert [o.name for o in metadata.outputs] == ["y", "p"]


async def test_infer_with_raw_contents(stub: Stub) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    request = pb.ModelInferRequest(model_name="tiny", id="g-1", raw_input_contents=[x.tobytes()])
    request.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    request.outputs.add(name="y")
    call = stub.ModelInfer(request, metadata=(("ferryman-request-id", "trace-9"),))
    response = await call
    assert dict(await call.initial_metadata()) == {
        "ferryman-model-version": "3",
        "ferryman-request-id": "trace-9",
    }
    assert response.id == "g-1"
    assert response.model_version == "3"
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("y", "FP32", [2, 4])
    y = np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(y, x * 2 + 1)


async def test_infer_with_typed_contents(stub: Stub) -> None:
    request = pb.ModelInferRequest(model_name="tiny")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([1, 2, 3, 4])
    response = await stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["y", "p"]
    y = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    np.testing.assert_array_equal(y, [3, 5, 7, 9])


@pytest.mark.parametrize(
    ("name", "shape", "code", "message"),
    [
        ("tiny", [1, 3], grpc.StatusCode.INVALID_ARGUMENT, "expects x FP32 [-1, 4]"),
        ("other", [1, 4], grpc.StatusCode.NOT_FOUND, "serves 'tiny'"),
        ("tiny", [2**40, 4], grpc.StatusCode.INVALID_ARGUMENT, "more than the"),
    ],
)
async def test_errors_become_status_codes(
    stub: Stub, name: str, shape: list[int], code: grpc.StatusCode, message: str
) -> None:
    request = pb.ModelInferRequest(model_name=name, raw_input_contents=[b"\0" * 12])
    request.inputs.add(name="x", datatype="FP32", shape=shape)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ModelInfer(request)
    assert caught.value.code() == code
    assert message in (caught.value.details() or "")
