"""Predict APIs for people and for TF-Serving clients, on the same data plane as V2.

``POST /predict`` takes an image (PNG/JPEG bytes, or base64 in ``{"image": ...}``) or a JSON
row (``{"row": [...]}`` or ``{"rows": [[...], ...]}``) and answers labels and probabilities,
read from the model's outputs by :mod:`ferryman.serving.classes` (the same reading the
payload log keeps).
``POST /v1/models/{model}:predict`` speaks TF-Serving's REST (``instances`` or ``inputs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from ferryman.errors import FerrymanError, InvalidInput
from ferryman.protocol import codecs
from ferryman.protocol.images import decode_base64_image, image_to_array
from ferryman.protocol.strict_json import parse_json
from ferryman.serving.batching import Arrays
from ferryman.serving.classes import ClassOutputs, Reading
from ferryman.serving.dataplane import DataPlane
from ferryman.serving.limits import read_body
from ferryman.serving.payloads import Payload, payload_of
from ferryman.signature import TensorSpec

IMAGE_TYPES = ("image/png", "image/jpeg", "application/octet-stream")


async def predict(request: Request) -> Response:
    """Plain predict: one image or JSON rows in; labels and probabilities out."""
    plane: DataPlane = request.app.state.plane
    body = await _body(request, plane)  # before admission: see http.infer_v2
    with plane.admit() as deadline:
        spec, classes = _single_input(plane)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in IMAGE_TYPES:
            array = image_to_array(body, spec)
        else:
            array = _plain_json(parse_json(body), spec, plane.tensor_limits)
        payload = payload_of(request.scope) or Payload("", 0.0)  # none outside the edge
        await plane.infer({spec.name: array}, deadline, payload)
    reading = payload.reading
    if reading is None:
        raise FerrymanError(
            f"{plane.identity.describe()} answered outputs that are not shaped as its "
            "signature declares; see the replica's log"
        )
    document = {
        "model": plane.identity.model,
        "version": plane.identity.version,
        "predictions": label_rows(classes, reading),
    }
    return Response(orjson.dumps(document), media_type="application/json")


def _single_input(plane: DataPlane) -> tuple[TensorSpec, ClassOutputs]:
    if len(plane.signature.inputs) != 1:
        raise InvalidInput(
            f"/predict serves models with one input; {plane.identity.describe()} has "
            f"{len(plane.signature.inputs)}; use /v2/models/{plane.identity.model}/infer"
        )
    if plane.classes is None:
        outputs = ", ".join(spec.describe() for spec in plane.signature.outputs)
        raise InvalidInput(
            f"/predict answers classes, and {plane.identity.describe()} has no class output "
            f"(its outputs: {outputs}; a classifier gives a float [N, C] output of "
            "probabilities or scores, or an integer or string label per row); "
            f"use /v2/models/{plane.identity.model}/infer"
        )
    return plane.signature.inputs[0], plane.classes


def _plain_json(document: Any, spec: TensorSpec, limits: codecs.TensorLimits) -> np.ndarray:
    if isinstance(document, dict) and isinstance(document.get("image"), str):
        return image_to_array(decode_base64_image(document["image"]), spec)
    if isinstance(document, dict) and "row" in document:
        rows = [document["row"]]
    elif isinstance(document, dict) and "rows" in document:
        rows = document["rows"]
    else:
        raise InvalidInput(
            'send {"row": [...]}, {"rows": [[...], ...]}, {"image": "<base64>"} '
            "or the image bytes with Content-Type image/png or image/jpeg"
        )
    return _tensor_of(rows, spec, limits)


def _tensor_of(value: Any, spec: TensorSpec, limits: codecs.TensorLimits) -> np.ndarray:
    """Rows as a tensor of the input's datatype, shaped by the input's non-batch dims."""
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"input {spec.name!r} needs a non-empty list of rows")
    inner = list(spec.shape[1:]) if spec.shape else []
    if spec.shape and -1 not in inner:
        shape = [len(value), *inner]
    else:
        try:
            shape = list(np.shape(value))
        except ValueError:
            raise InvalidInput(f"input {spec.name!r}: the rows are ragged") from None
    count = codecs.check_tensor(spec.name, spec.datatype, shape, spec, limits)
    return codecs.coerce_array(spec.name, value, spec, shape, count)


def label_rows(classes: ClassOutputs, reading: Reading) -> list[dict[str, Any]]:
    """Per row: its label (the one the payload log keeps), the label's probability and
    every class's probability (when the model gives scores)."""
    probabilities = classes.probabilities(reading)
    if probabilities is None or reading.columns is None:
        return [{"label": label} for label in reading.labels]
    width = probabilities.shape[1]
    names = classes.names if len(classes.names) == width else tuple(map(str, range(width)))
    predictions = []
    for label, column, row in zip(reading.labels, reading.columns, probabilities, strict=True):
        predictions.append({
            "label": label,
            "probability": round(float(row[column]), 6),
            "probabilities": {n: round(float(p), 6) for n, p in zip(names, row, strict=True)},
        })  # fmt: skip
    return predictions


async def tf_serving_predict(request: Request) -> Response:
    """TF-Serving REST: ``{"instances": [...]}`` (rows) or ``{"inputs": ...}`` (columns)."""
    plane: DataPlane = request.app.state.plane
    plane.check_model(request.path_params["model"])
    body = await _body(request, plane)  # before admission: see http.infer_v2
    with plane.admit() as deadline:
        document = parse_json(body)
        is_rows, inputs = _tf_inputs(document, plane)
        outputs = await plane.infer(inputs, deadline, payload_of(request.scope))
    names = [spec.name for spec in plane.signature.outputs]
    if is_rows:
        if len(names) == 1:
            answer: Any = {"predictions": outputs[names[0]]}
        else:
            count = len(next(iter(outputs.values())))
            answer = {"predictions": [{n: outputs[n][i] for n in names} for i in range(count)]}
    else:
        answer = {"outputs": outputs[names[0]] if len(names) == 1 else outputs}
    encoded = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY, default=codecs.json_default)
    return Response(encoded, media_type="application/json")


def _tf_inputs(document: Any, plane: DataPlane) -> tuple[bool, Arrays]:
    if not isinstance(document, dict) or ("instances" in document) == ("inputs" in document):
        raise InvalidInput('send {"instances": [...]} or {"inputs": ...}, exactly one of them')
    specs = plane.signature.inputs
    is_rows = "instances" in document
    value = document["instances" if is_rows else "inputs"]
    if len(specs) == 1 and not (isinstance(value, dict) or _is_list_of_dicts(value)):
        return is_rows, {specs[0].name: _tensor_of(value, specs[0], plane.tensor_limits)}
    if is_rows:
        if not _is_list_of_dicts(value):
            raise InvalidInput('"instances" must be a list of objects keyed by input name')
        columns: dict[str, Any] = {s.name: [row.get(s.name) for row in value] for s in specs}
    elif isinstance(value, dict):
        columns = {s.name: value.get(s.name) for s in specs}
    else:
        raise InvalidInput('"inputs" must be an object keyed by input name for this model')
    return is_rows, {s.name: _tensor_of(columns[s.name], s, plane.tensor_limits) for s in specs}


def _is_list_of_dicts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


async def _body(request: Request, plane: DataPlane) -> bytes:
    """The whole body, within the replica's size limit (413 past it, unread)."""
    return await read_body(
        request.headers.get("content-length"), request.receive, plane.settings.max_body_bytes
    )
