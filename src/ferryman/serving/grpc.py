"""gRPC of a replica: the Open Inference Protocol V2 service, translated to the data plane.

Like the REST layer it only translates: a ``ModelInferRequest`` becomes the same protocol
request the REST layer builds (tensors in ``raw_input_contents`` as the binary extension,
typed ``contents`` as JSON data, BYTES ``bytes_contents`` as JSON strings), so one set of
checks guards both. Outputs go back in ``raw_output_contents`` (BYTES elements each after
its 4-byte length, as Triton does). Errors map to gRPC status codes with the same messages.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
import numpy as np
from google.protobuf.message import Message

from ferryman.errors import FerrymanError, InvalidInput
from ferryman.protocol import codecs
from ferryman.protocol import grpc_predict_v2_pb2 as pb
from ferryman.protocol.v2 import InferenceRequest
from ferryman.serving.auth import LIVENESS_RPC, REFUSED, expected_credentials, is_authorized
from ferryman.serving.dataplane import DataPlane

logger = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP16": "fp32_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}  # fmt: skip
Handler = Callable[[Any, Any], Awaitable[Message]]
RPCS: dict[str, type[Message]] = {
    "ServerLive": pb.ServerLiveRequest, "ServerReady": pb.ServerReadyRequest,
    "ModelReady": pb.ModelReadyRequest, "ServerMetadata": pb.ServerMetadataRequest,
    "ModelMetadata": pb.ModelMetadataRequest, "ModelInfer": pb.ModelInferRequest,
}  # fmt: skip
"""The service's RPCs and their request types (every one but ServerLive needs the token)."""
_SNAKE = re.compile(r"(?<=[a-z])(?=[A-Z])")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class InferenceService:
    """The six RPCs of ``GRPCInferenceService`` over one data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def server_live(self, request: pb.ServerLiveRequest, context: Any) -> Message:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> Message:
        return pb.ServerReadyResponse(ready=self.plane.is_ready)

    async def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> Message:
        self.plane.check_model(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self.plane.is_ready)

    async def server_metadata(self, request: pb.ServerMetadataRequest, context: Any) -> Message:
        metadata = self.plane.server_metadata()
        return pb.ServerMetadataResponse(
            name=metadata.name, version=metadata.version, extensions=metadata.extensions
        )

    async def model_metadata(self, request: pb.ModelMetadataRequest, context: Any) -> Message:
        self.plane.check_model(request.name, request.version or None)
        metadata = self.plane.model_metadata()
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata.name,
            versions=metadata.versions,
            platform=metadata.platform,
            inputs=[
                tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.inputs
            ],
            outputs=[
                tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.outputs
            ],
        )

    async def model_infer(self, request: pb.ModelInferRequest, context: Any) -> Message:
        plane = self.plane
        plane.check_model(request.model_name, request.model_version or None)
        with plane.admit() as deadline:
            remaining_s = context.time_remaining()
            if remaining_s is not None:
                deadline = min(deadline, time.monotonic() + remaining_s)  # noqa: PLW2901
            inference, binary = to_protocol(request)
            inputs = codecs.decode_inputs(inference, binary, plane.input_specs, plane.tensor_limits)
            choices = codecs.choose_outputs(inference, plane.signature)
            outputs = await plane.infer(inputs, deadline)
        response = pb.ModelInferResponse(
            model_name=plane.identity.model,
            model_version=plane.identity.version,
            id=request.id,
        )
        for choice in choices:
            array = np.ascontiguousarray(outputs[choice.name])
            response.outputs.add(
                name=choice.name, datatype=codecs.datatype_of(array), shape=array.shape
            )
            response.raw_output_contents.append(codecs.tensor_bytes(array))
        return response


def to_protocol(request: pb.ModelInferRequest) -> tuple[InferenceRequest, memoryview]:
    """The REST-shaped request and binary tail that carry the same tensors."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "send one per input, or none and use contents"
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {"name": tensor.name, "shape": list(tensor.shape),
                                "datatype": tensor.datatype}  # fmt: skip
        if raw:
            item["parameters"] = {"binary_data_size": len(raw[index])}
        else:
            field = _CONTENTS.get(tensor.datatype, "fp32_contents")
            item["data"] = list(getattr(tensor.contents, field))
        inputs.append(item)
    outputs = [{"name": output.name} for output in request.outputs] or None
    document = {"id": request.id or None, "inputs": inputs, "outputs": outputs}
    try:
        inference = InferenceRequest.model_validate(document)
    except ValueError as exc:
        raise InvalidInput(f"not a V2 inference request: {str(exc).splitlines()[0]}") from None
    return inference, memoryview(b"".join(raw))


def _unary(service: InferenceService, name: str, request_type: type[Message]) -> Any:
    method: Handler = getattr(service, _SNAKE.sub("_", name).lower())
    credentials = None if name == LIVENESS_RPC else expected_credentials(service.plane.settings)

    async def handle(request: Any, context: Any) -> Message:
        started = time.perf_counter()
        status = 200
        await context.send_initial_metadata(_stamp(service.plane, context))
        try:
            if credentials is not None and not _is_authorized(context, credentials):
                raise REFUSED
            return await method(request, context)
        except FerrymanError as exc:
            status = exc.status_code
            await context.abort(_CODES.get(exc.status_code, grpc.StatusCode.INTERNAL), exc.message)
            raise  # abort raises; this line keeps the type checker honest
        finally:
            if name == "ModelInfer" and status != 401:  # health, metadata, refusals: no traffic
                service.plane.metrics.count_request(status, time.perf_counter() - started)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def _is_authorized(context: Any, credentials: bytes) -> bool:
    presented = dict(context.invocation_metadata() or ()).get("authorization")
    return is_authorized(presented.encode() if isinstance(presented, str) else None, credentials)


def _stamp(plane: DataPlane, context: Any) -> tuple[tuple[str, str], ...]:
    """The metadata every answer carries, like the REST headers of the edge: the replica's
    own request id, and a client's id for the request as its correlation id."""
    given = dict(context.invocation_metadata() or ())
    stamp = (
        ("ferryman-model-version", plane.identity.version),
        ("ferryman-request-id", os.urandom(16).hex()),
    )
    for key in ("ferryman-request-id", "x-request-id"):
        value = given.get(key, "")
        if _CLIENT_ID.fullmatch(value):
            return (*stamp, ("ferryman-correlation-id", value))
    return stamp


def build_grpc_server(plane: DataPlane, host: str, port: int) -> Any:
    """A grpc.aio server for ``plane`` on ``host:port`` (not started)."""
    service = InferenceService(plane)
    handlers = {name: _unary(service, name, kind) for name, kind in RPCS.items()}
    limit = plane.settings.max_body_bytes
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"{host}:{port}")
    return server
