"""REST of a replica: Open Inference Protocol V2 routes, translated to the data plane.

Routes are one literal tuple; handlers turn HTTP into protocol types and back, nothing more.
The binary-tensor extension: a body may be a JSON header of ``Inference-Header-Content-Length``
bytes followed by raw tensor bytes, and outputs asked for with ``binary_data`` come back the
same way.

``POST /v2/models/{model}[/versions/{version}]/infer`` is the hot path: :func:`infer_v2`
translates it straight from the ASGI scope and receive channel to a :class:`Reply`, which the
edge sends, without Starlette's request, response, router and middleware objects (measured:
they cost more per request than the whole HTTP floor of uvicorn). Its routes stay in
``ROUTES`` for every other method on those paths (405).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from ferryman.errors import FerrymanError, InvalidInput
from ferryman.protocol import codecs
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.limits import read_body
from ferryman.serving.payloads import Payload, payload_of
from ferryman.serving.predict import predict, tf_serving_predict

JSON = "application/json"
BINARY_HEADER = b"inference-header-content-length"
CONTENT_LENGTH = b"content-length"
Headers = list[tuple[bytes, bytes]]


class Reply(NamedTuple):
    """An answer as the edge sends it: status, headers (no length) and body."""

    status: int
    headers: Headers
    body: bytes


_JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
_BINARY = b"application/octet-stream"


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
    # The registry identity lets a control plane tell whose fleet this replica is.
    return json_response({"live": True, "registry": plane_of(request).identity.registry})


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


def v2_infer_target(scope: Scope) -> tuple[str, str | None] | None:
    """``(model, version)`` when ``scope`` is a V2 inference POST, else None.

    The same paths the ``ROUTES`` entries match (a name is one path segment).
    """
    path: str = scope["path"]
    if scope["method"] != "POST" or not path.startswith("/v2/models/"):
        return None
    if not path.endswith("/infer"):
        return None
    parts = path[11:-6].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return parts[0], parts[2]
    return None


async def infer_v2(
    plane: DataPlane,
    scope: Scope,
    receive: Receive,
    target: tuple[str, str | None],
    payload: Payload | None,
) -> Reply:
    """``POST /v2/models/{model}[/versions/{version}]/infer``, straight from ASGI."""
    plane.check_model(*target)
    if payload is not None and target[1] is not None:
        payload.pinned = True  # the gateway forwards /versions/N only for a client's pin
    content_length = header_length = None
    for name, value in scope["headers"]:  # names are lower case in ASGI; the first one counts
        if name == CONTENT_LENGTH and content_length is None:
            content_length = value.decode("latin-1")
        elif name == BINARY_HEADER and header_length is None:
            header_length = value.decode("latin-1")
    # Admitted once the body is here: an admitted request is one the batcher waits for, and
    # a body still arriving (slowly, perhaps) must not make every batch wait for company.
    body = await read_body(content_length, receive, plane.settings.max_body_bytes)
    with plane.admit() as deadline:
        inference, binary, large = codecs.read_inference_request(
            body, _header_length(header_length)
        )
        inputs = codecs.decode_inputs(
            inference, binary, plane.input_specs, plane.tensor_limits, large
        )
        choices = codecs.choose_outputs(inference, plane.signature)
        outputs = await plane.infer(inputs, deadline, payload)
    request_id = inference.id or (payload.request_id if payload is not None else "")
    head = (plane.identity.model, plane.identity.version, request_id)
    response, tail = codecs.build_response(head, outputs, choices)
    document = codecs.encode_response(response)
    if not tail:
        return Reply(200, _JSON_HEADERS, document)
    headers = [(b"content-type", _BINARY), (BINARY_HEADER, b"%d" % len(document))]
    return Reply(200, headers, b"".join((document, *tail)))


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise InvalidInput(f"Inference-Header-Content-Length {value[:32]!r} is not a number")
    return int(value)


async def payloads(request: Request) -> Response:
    """Recent payload records for the control plane: ``?after=SEQ&limit=N&instance=ID``
    (the reader kept everything up to SEQ of replica process ID)."""
    after = _query_int(request, "after", 0)
    limit = _query_int(request, "limit", 1000)
    instance = request.query_params.get("instance")
    return Response(plane_of(request).payloads.page(after, limit, instance), media_type=JSON)


def _query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput(f"query parameter {name}={value[:32]!r} must be a whole number ≥ 0")
    return int(value)


async def metrics(request: Request) -> Response:
    return Response(plane_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def error_reply(error: FerrymanError, *, close: bool = False) -> Reply:
    """The one rendering of errors: ``{"error": message}`` with the error's status.

    ``close`` (or a 413/431, whose unread rest is not read) ends the connection after it.
    """
    headers = [*_JSON_HEADERS]
    retry_after_s: Any = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    if close or error.status_code in (413, 431):
        headers.append((b"connection", b"close"))
    return Reply(error.status_code, headers, orjson.dumps({"error": error.message}))


async def render_error(request: Request, exc: Exception) -> Response:
    """Starlette's handler of errors raised in routes: :func:`error_reply` as a Response."""
    if isinstance(exc, FerrymanError):
        reply = error_reply(exc)
        response = Response(reply.body, reply.status)
        response.raw_headers.extend(reply.headers)
        return response
    if isinstance(exc, HTTPException):
        return json_response({"error": str(exc.detail)}, exc.status_code)
    raise exc


async def infer(request: Request) -> Response:
    """The V2 inference routes as Starlette sees them; the edge answers POSTs before this."""
    target = request.path_params["model"], request.path_params.get("version")
    payload = payload_of(request.scope)
    reply = await infer_v2(plane_of(request), request.scope, request.receive, target, payload)
    response = Response(reply.body, reply.status)
    response.raw_headers.extend(reply.headers)
    return response


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
