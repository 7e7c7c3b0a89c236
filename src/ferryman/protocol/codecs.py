"""Conversions at the edge: V2 requests from strict JSON, tensors to numpy and back, binary
tensors.

Every check a request can fail runs here, before the model sees it: datatype and shape
against the signature, the shape's element count against the data and against the size
limit (computed with Python integers, so ``[2147483647, 2147483647]`` costs nothing),
value kinds (no strings in FP32), ranges and finiteness. BYTES tensors (text) are decoded
and encoded by :mod:`ferryman.protocol.strings`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson
from pydantic import ValidationError

from ferryman.errors import FerrymanError, InvalidInput
from ferryman.protocol import json_tensors, strings
from ferryman.protocol.strict_json import parse_json
from ferryman.protocol.v2 import (
    InferenceRequest,
    InferenceResponse,
    RequestInput,
    ResponseOutput,
)
from ferryman.signature import Signature, TensorSpec

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
DATATYPES: dict[np.dtype[Any], str] = {dtype: name for name, dtype in NUMPY_DTYPES.items()}
BYTES = "BYTES"
"""Variable-length elements: UTF-8 text in a numpy object array (see :mod:`.strings`)."""
_ACCEPTED_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}
_KIND_WORDS = {"b": "booleans", "u": "integers", "i": "integers", "f": "numbers"}


@dataclass(frozen=True, slots=True)
class TensorLimits:
    """The most elements one input tensor may declare."""

    max_elements: int
    """Of a numeric tensor (each element takes at least a byte of the body)."""
    max_string_elements: int
    """Of a BYTES tensor: each element becomes a Python string, so fewer."""


class OutputChoice(NamedTuple):
    """An output to return and whether it goes back as a binary tensor."""

    name: str
    is_binary: bool


def _inference_request_keys(document: Any) -> int:
    """The keys of a V2 request's own objects (request, inputs, outputs, their parameters):
    never more than the parser kept, and all of them in a well-formed request."""
    if not isinstance(document, dict):
        return 0
    count = len(document) + _parameter_keys(document)
    for field in ("inputs", "outputs"):
        items = document.get(field)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    count += len(item) + _parameter_keys(item)
    return count


def _parameter_keys(item: dict[str, Any]) -> int:
    parameters = item.get("parameters")
    return len(parameters) if isinstance(parameters, dict) else 0


def parse_inference_request(
    body: bytes, header_length: int | None
) -> tuple[InferenceRequest, memoryview]:
    """Split a V2 body into its JSON header and binary tail, and validate the header."""
    request, tail, _ = _parse(body, header_length, may_set_aside=False)
    return request, tail


def read_inference_request(
    body: bytes, header_length: int | None
) -> tuple[InferenceRequest, memoryview, dict[int, Any]]:
    """:func:`parse_inference_request`, with the large JSON ``data`` arrays of a large body
    set aside (by input index) for :func:`decode_inputs` to read straight into numpy (see
    :mod:`ferryman.protocol.json_tensors`); their ``data`` in the request is empty."""
    return _parse(body, header_length, may_set_aside=True)


def _parse(
    body: bytes, header_length: int | None, *, may_set_aside: bool
) -> tuple[InferenceRequest, memoryview, dict[int, Any]]:
    view = memoryview(body)
    header: bytes | memoryview
    if header_length is None:
        header, tail = body, view[len(view) :]
    elif 0 <= header_length <= len(view):
        header, tail = view[:header_length], view[header_length:]
    else:
        raise InvalidInput(
            f"Inference-Header-Content-Length is {header_length} but the body has "
            f"{len(view)} bytes; it must be the length of the JSON part"
        )
    split = None
    if may_set_aside and header_length is None:
        split = json_tensors.split_request_strictly(body)
    large: dict[int, Any] = {}
    if split is None:
        document = parse_json(header, some_keys=_inference_request_keys)
    else:
        document, large = split
    try:
        return InferenceRequest.model_validate(document), tail, large
    except ValidationError as exc:
        raise InvalidInput(f"not a V2 inference request: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"


def input_specs(signature: Signature) -> dict[str, TensorSpec]:
    """A signature's inputs by name, in graph order: what :func:`decode_inputs` checks against."""
    return {spec.name: spec for spec in signature.inputs}


def decode_inputs(
    request: InferenceRequest,
    binary: memoryview,
    specs: Mapping[str, TensorSpec],
    limits: TensorLimits,
    large: Mapping[int, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Turn the request's inputs into arrays, refusing anything the inputs (``specs``, from
    :func:`input_specs`) do not allow. ``large``: the ``data`` arrays that
    :func:`read_inference_request` set aside."""
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for index, item in enumerate(request.inputs):
        name = item.name
        spec = specs.get(name)
        if spec is None:
            raise InvalidInput(
                f"input {name!r} is not an input of this model; its inputs are "
                f"{', '.join(s.describe() for s in specs.values())}"
            )
        if name in arrays:
            raise InvalidInput(f"input {name!r} appears twice; send each input once")
        count = check_tensor(name, item.datatype, item.shape, spec, limits)
        size = None if item.parameters is None else item.parameters.get("binary_data_size")
        aside = None if large is None else large.get(index)
        if aside is not None and size is None:
            arrays[name] = _set_aside_array(name, aside, spec, item.shape, count)
        elif size is None:
            if item.data is None:
                raise InvalidInput(
                    f"input {name!r} has neither data nor a binary_data_size parameter"
                )
            arrays[name] = coerce_array(name, item.data, spec, item.shape, count)
        else:
            arrays[name], used = _binary_array(item, size, binary[offset:], spec, count)
            offset += used
    if offset != len(binary):
        raise InvalidInput(
            f"the body has {len(binary) - offset} binary bytes that no input claims; "
            "binary_data_size of the inputs must add up to the binary part"
        )
    if len(arrays) != len(specs):  # each array is a distinct input, so some are missing
        missing = [spec.describe() for spec in specs.values() if spec.name not in arrays]
        raise InvalidInput(f"missing input(s): {', '.join(missing)}")
    return arrays


def check_tensor(
    name: str, datatype: str, shape: list[int], spec: TensorSpec, limits: TensorLimits
) -> int:
    """Check a declared tensor against its spec and the size limit; return its element count."""
    if datatype != spec.datatype:
        raise InvalidInput(
            f"input {name!r} has datatype {datatype[:16]}; the model expects {spec.describe()}"
        )
    if datatype in NUMPY_DTYPES:
        max_elements = limits.max_elements
    elif datatype == BYTES:
        max_elements = limits.max_string_elements
    else:
        raise InvalidInput(f"input {name!r}: datatype {datatype} is not served by replicas")
    expected = spec.shape
    if expected is not None:
        fits = len(shape) == len(expected)
        if fits:
            for dim, wanted in zip(shape, expected):  # noqa: B905 (lengths checked)
                if wanted not in (dim, -1):
                    fits = False
                    break
        if not fits:
            raise InvalidInput(
                f"input {name!r} has shape {list(shape)}; the model expects {spec.describe()}"
            )
    count = 1
    for dim in shape:
        if dim < 0:
            raise InvalidInput(f"input {name!r} has a negative dimension in shape {list(shape)}")
        count *= dim
        if count > max_elements:
            raise InvalidInput(
                f"input {name!r} declares shape {list(shape)}, more than the "
                f"{max_elements} elements a request may carry; send smaller batches"
            )
    return count


def coerce_array(
    name: str, data: object, spec: TensorSpec, shape: list[int], count: int
) -> np.ndarray:
    """JSON values as an array of the spec's datatype and ``shape`` (checked), or 400."""
    if spec.datatype == BYTES:
        return strings.from_json(name, data, count).reshape(shape)
    try:
        raw = np.array(data)
    except (ValueError, OverflowError):
        raise InvalidInput(f"input {name!r}: data is ragged or out of range") from None
    if raw.size != count:
        raise InvalidInput(
            f"input {name!r} has {raw.size} values; shape {list(shape)} needs {count}"
        )
    dtype = NUMPY_DTYPES[spec.datatype]
    if count and raw.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        raise InvalidInput(
            f"input {name!r} is {spec.datatype} and needs {_KIND_WORDS[dtype.kind]}; "
            f"got values like {str(raw.flat[0])[:32]!r}"
        )
    return _checked(name, raw, spec.datatype, dtype).reshape(shape)


def _set_aside_array(
    name: str, data: Any, spec: TensorSpec, shape: list[int], count: int
) -> np.ndarray:
    """A set-aside JSON array as the input's array: straight from its buffer when it holds
    numbers of the datatype's kind, else converted as any JSON data (which names a fault)."""
    dtype = NUMPY_DTYPES.get(spec.datatype)
    raw = None if dtype is None else json_tensors.numeric_array(data, dtype, count)
    if raw is None or dtype is None:
        return coerce_array(name, data.as_list(), spec, shape, count)
    return _checked(name, raw, spec.datatype, dtype).reshape(shape)


def _checked(name: str, raw: np.ndarray, datatype: str, dtype: np.dtype[Any]) -> np.ndarray:
    """``raw`` as ``dtype``, refused when a value does not fit it or is not finite."""
    kind = dtype.kind
    if kind in "iu" and raw.size and raw.dtype != dtype:
        info = np.iinfo(dtype)
        low, high = raw.min(), raw.max()
        if low < info.min or high > info.max:
            raise InvalidInput(
                f"input {name!r} is {datatype} ({info.min}..{info.max}); got {low}..{high}"
            )
    array = raw.astype(dtype, copy=False)
    if kind == "f":
        flat = array.reshape(-1)
        # The dot product of the values with themselves is finite only when every value is
        # (one BLAS call, a third of the cost of isfinite().all()); it may also overflow
        # with finite values, and only then are they checked one by one.
        if not (math.isfinite(flat.dot(flat)) or np.isfinite(flat).all()):
            raise InvalidInput(f"input {name!r} contains NaN or infinity; send finite numbers")
    return array


def _binary_array(
    item: RequestInput, size: object, rest: memoryview, spec: TensorSpec, count: int
) -> tuple[np.ndarray, int]:
    """The input's ``size`` bytes from ``rest`` (the binary part not yet claimed), and size."""
    name, shape = item.name, item.shape
    is_text = spec.datatype == BYTES
    needed = None if is_text else count * NUMPY_DTYPES[spec.datatype].itemsize
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or (needed is not None and size != needed)
    ):
        rule = "a byte count ≥ 0" if needed is None else f"{needed} bytes"
        raise InvalidInput(
            f"input {name!r}: binary_data_size is {size!r}; shape {list(shape)} of "
            f"{spec.datatype} needs {rule}"
        )
    if size > len(rest):
        raise InvalidInput(
            f"input {name!r} needs {size} binary bytes; only {len(rest)} are left in the body"
        )
    if is_text:
        return strings.from_binary(name, rest[:size], count).reshape(shape), size
    dtype = NUMPY_DTYPES[spec.datatype]
    array = np.frombuffer(rest, dtype=dtype, count=count)
    return _checked(name, array, spec.datatype, dtype).reshape(shape), size


def choose_outputs(request: InferenceRequest, signature: Signature) -> list[OutputChoice]:
    """The outputs to return, in the request's order (all of them when none are named)."""
    parameters = request.parameters
    default_binary = bool(parameters and parameters.get("binary_data_output", False))
    if not request.outputs:
        return [OutputChoice(spec.name, default_binary) for spec in signature.outputs]
    known = {spec.name for spec in signature.outputs}
    choices = []
    for output in request.outputs:
        if output.name not in known:
            raise InvalidInput(
                f"output {output.name!r} is not an output of this model; its outputs are "
                f"{', '.join(spec.describe() for spec in signature.outputs)}"
            )
        wanted = (output.parameters or {}).get("binary_data", default_binary)
        choices.append(OutputChoice(output.name, bool(wanted)))
    return choices


def build_response(
    response_head: tuple[str, str, str],
    arrays: dict[str, np.ndarray],
    choices: list[OutputChoice],
) -> tuple[InferenceResponse, list[bytes]]:
    """Pair each chosen output with its array; binary ones give their bytes separately."""
    model_name, model_version, request_id = response_head
    outputs: list[ResponseOutput] = []
    tail: list[bytes] = []
    for choice in choices:
        name = choice.name
        array = arrays[name]
        datatype = DATATYPES.get(array.dtype) or datatype_of(array)
        if choice.is_binary:
            raw = tensor_bytes(np.ascontiguousarray(array))
            tail.append(raw)
            outputs.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                            "parameters": {"binary_data_size": len(raw)}})  # fmt: skip
        else:
            data = strings.to_json(name, array) if datatype == BYTES else array.ravel()
            outputs.append(
                {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
            )
    response: InferenceResponse = {"model_name": model_name, "model_version": model_version,
                                   "id": request_id, "outputs": outputs}  # fmt: skip
    return response, tail


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of a model's output array (text and objects are BYTES)."""
    datatype = DATATYPES.get(array.dtype)
    if datatype is not None:
        return datatype
    if array.dtype.kind in strings.TEXT_KINDS:
        return BYTES
    raise FerrymanError(f"the model gave an output of numpy dtype {array.dtype}, which V2 lacks")


def tensor_bytes(array: np.ndarray) -> bytes:
    """An output in the binary form: raw little-endian elements, or length-prefixed BYTES."""
    if array.dtype.kind in strings.TEXT_KINDS:
        return strings.to_binary(array)
    return array.tobytes()


def encode_response(response: InferenceResponse) -> bytes:
    """The JSON document of a response (fields that are absent are not written)."""
    return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY, default=json_default)


def json_default(value: object) -> Any:
    """What orjson calls for values it does not write natively."""
    if isinstance(value, np.ndarray):  # dtypes orjson does not write natively (float16)
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_array(datatype: str, shape: Iterable[int], data: Iterable[Any]) -> np.ndarray:
    """A plain JSON tensor (such as a golden request's) as an array of its datatype."""
    if datatype == BYTES:
        return np.array([str(value) for value in data], dtype=object).reshape(tuple(shape))
    if datatype not in NUMPY_DTYPES:
        raise InvalidInput(f"datatype {datatype} is not served by replicas")
    return np.array(list(data), dtype=NUMPY_DTYPES[datatype]).reshape(tuple(shape))
