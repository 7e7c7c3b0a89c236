"""REST of a replica: Open Inference Protocol V2 routes, translated to the data plane.

Routes are one literal tuple; handlers turn HTTP into protocol types and back, nothing more.
The binary-tensor extension: a body may be a JSON header of ``Inference-Header-Content-Length``
bytes followed by raw tensor bytes, and outputs asked for with ``binary_data`` come back the
same way.
"""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ferryman.errors import FerrymanError, InvalidInput
from ferryman.protocol import codecs
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.limits import read_body
from ferryman.serving.payloads import payload_of
from ferryman.serving.predict import predict, tf_serving_predict

JSON = "application/json"
BINARY_HEADER = "inference-header-content-length"


def plane_of(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


def json_response(document: object, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=codecs.json_default),
        status_code,
        media_type=JSON,
    )


async def server_live(request: Request) -> Response:
    return json_response({"live": True})


async def server_ready(request: Request) -> Response:
    plane_of(request).check_ready()
    return json_response({"ready": True})


async def server_metadata(request: Request) -> Response:
    return json_response(plane_of(request).server_metadata())


async def model_metadata(request: Request) -> Response:
    plane = plane_of(request)
    plane.check_model(request.path_params["model"], request.path_params.get("version"))
    return json_response(plane.model_metadata())


async def model_ready(request: Request) -> Response:
    plane = plane_of(request)
    plane.check_model(request.path_params["model"], request.path_params.get("version"))
    plane.check_ready()
    return json_response({"name": plane.identity.model, "ready": True})


async def infer(request: Request) -> Response:
    plane = plane_of(request)
    plane.check_model(request.path_params["model"], request.path_params.get("version"))
    with plane.admit() as deadline:
        body = await read_body(
            request.headers.get("content-length"), request.stream(), plane.settings.max_body_bytes
        )
        header_length = _header_length(request.headers.get(BINARY_HEADER))
        inference, binary = codecs.parse_inference_request(body, header_length)
        inputs = codecs.decode_inputs(inference, binary, plane.signature, plane.max_elements)
        choices = codecs.choose_outputs(inference, plane.signature)
        outputs = await plane.infer(inputs, deadline, payload_of(request.scope))
    head = (plane.identity.model, plane.identity.version, inference.id or request.state.request_id)
    response, tail = codecs.build_response(head, outputs, choices)
    document = codecs.encode_response(response)
    if not tail:
        return Response(document, media_type=JSON)
    return Response(
        b"".join((document, *tail)),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(document))},
    )


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise InvalidInput(f"Inference-Header-Content-Length {value[:32]!r} is not a number")
    return int(value)


async def payloads(request: Request) -> Response:
    """Recent payload records for the control plane: ``?after=SEQ&limit=N``."""
    after = _query_int(request, "after", 0)
    limit = _query_int(request, "limit", 1000)
    return json_response(plane_of(request).payloads.read(after, limit))


def _query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput(f"query parameter {name}={value[:32]!r} must be a whole number ≥ 0")
    return int(value)


async def metrics(request: Request) -> Response:
    return Response(plane_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def render_error(request: Request, exc: Exception) -> Response:
    """The one renderer of errors: ``{"error": message}`` with the error's status."""
    if isinstance(exc, FerrymanError):
        response = json_response({"error": exc.message}, exc.status_code)
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s is not None:
            response.headers["Retry-After"] = str(retry_after_s)
        if exc.status_code == 413:
            response.headers["Connection"] = "close"  # the unread rest of the body is not read
        return response
    if isinstance(exc, HTTPException):
        return json_response({"error": str(exc.detail)}, exc.status_code)
    raise exc


ROUTES = (  # matched in order: inference first
    Route("/v2/models/{model}/infer", infer, methods=["POST"]),
    Route("/v2/health/live", server_live, methods=["GET"]),
    Route("/v2/health/ready", server_ready, methods=["GET"]),
    Route("/v2", server_metadata, methods=["GET"]),
    Route("/v2/models/{model}", model_metadata, methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}", model_metadata, methods=["GET"]),
    Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
    Route("/v1/models/{model}:predict", tf_serving_predict, methods=["POST"]),
    Route("/predict", predict, methods=["POST"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/ferryman/v1/payloads", payloads, methods=["GET"]),
)
