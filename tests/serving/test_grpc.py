"""gRPC V2 on the same data plane: a round trip through a real grpc.aio channel."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]  # as src/ferryman/serving/grpc.py
import numpy as np
import pytest

from ferryman.engines.onnx import OnnxEngine
from ferryman.protocol import grpc_predict_v2_pb2 as pb
from tests.serving.conftest import affine_model, replica, running, text_model

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
    app = replica(OnnxEngine(affine_model()), grpc_port=port)
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
    stamp = dict(await call.initial_metadata())
    assert stamp.pop("ferryman-correlation-id") == "trace-9"
    assert len(stamp.pop("ferryman-request-id")) == 32  # the replica's own, never the client's
    assert stamp == {"ferryman-model-version": "3"}
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


def packed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


@pytest.fixture
async def text_port() -> AsyncIterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with running(replica(OnnxEngine(text_model()), grpc_port=port)):
        yield port


WORDS = ["hello", "", "Ärger", "日本語 😀"]


@pytest.mark.parametrize("form", ["bytes_contents", "raw_input_contents"])
async def test_bytes_round_trip(text_port: int, form: str) -> None:
    request = pb.ModelInferRequest(model_name="tiny")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[4])
    encoded = [word.encode() for word in WORDS]
    if form == "bytes_contents":
        tensor.contents.bytes_contents.extend(encoded)
    else:
        request.raw_input_contents.append(packed(*encoded))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{text_port}") as channel:
        response = await Stub(channel).ModelInfer(request)
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("shout", "BYTES", [4]), ("same", "BYTES", [4])
    ]  # fmt: skip
    assert response.raw_output_contents[0] == packed(*(f"{w}!".encode() for w in WORDS))
    assert response.raw_output_contents[1] == packed(*encoded)


@pytest.mark.parametrize(
    ("shape", "contents", "raw", "message"),
    [
        ([2], [b"ok", b"\xff"], None, "element 1 is not valid UTF-8"),
        ([1], None, packed(b"abc")[:-1], "declares 3 bytes"),
        ([2], None, b"\x01\x00", "need at least 8 bytes"),
    ],
    ids=["invalid UTF-8", "truncated", "too short for the count"],
)
async def test_bad_bytes_are_invalid_argument(
    text_port: int, shape: list[int], contents: list[bytes] | None, raw: bytes | None,
    message: str,
) -> None:  # fmt: skip
    request = pb.ModelInferRequest(model_name="tiny")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=shape)
    if contents is not None:
        tensor.contents.bytes_contents.extend(contents)
    if raw is not None:
        request.raw_input_contents.append(raw)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{text_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await Stub(channel).ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert message in details
    assert "input 'text'" in details


TRITON_GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
words = np.array(json.loads(sys.argv[2]), dtype=object)
tensor = triton.InferInput("text", [len(words)], "BYTES")
tensor.set_data_from_numpy(words)
with triton.InferenceServerClient(sys.argv[1]) as client:
    result = client.infer("tiny", [tensor])
print(json.dumps([v.decode() for v in result.as_numpy("shout")]))
"""


async def test_tritonclient_grpc_bytes_round_trip(text_port: int) -> None:
    # Its own process: tritonclient.grpc registers the same protobuf names as ours.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TRITON_GRPC_CLIENT, f"127.0.0.1:{text_port}", json.dumps(WORDS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    assert json.loads(out) == [f"{w}!" for w in WORDS]
