"""The format gate: which files may become artifacts, and what they declare.

An allow-list, not a scanner: a file is accepted only if it parses as a self-contained
ONNX model (a non-executable format), or is a model bundle (a language model's folder as a
tar of ONNX, JSON and tokenizer files only: :mod:`ferryman.artifacts.bundle`). Everything
else is refused. Files that look like
Python pickles (pickle, joblib, ``torch.save``) get a message that says why they are
refused and what to register instead; they are only ever sniffed by their first bytes,
never loaded.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import onnx
from google.protobuf.message import DecodeError

from ferryman.artifacts.bundle import MODEL_FILE, is_bundle, read_bundle
from ferryman.errors import UnsafeArtifact
from ferryman.signature import Datatype, Signature, TensorSpec

_ONNX_DATATYPES: dict[int, Datatype] = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.STRING: "BYTES",
}

_PICKLE_ADVICE = (
    "pickles run arbitrary code when loaded, so Ferryman never stores or loads them; "
    "export the model to ONNX (torch.onnx.export for PyTorch, skl2onnx for scikit-learn) "
    "and register the .onnx file"
)


class ArtifactFormat(StrEnum):
    ONNX = "onnx"
    GENAI_BUNDLE = "onnx-genai"
    """A language model's folder for ONNX Runtime GenAI, as one tar (artifacts/bundle.py)."""


_CLASSIFIER_OPS = frozenset({"LinearClassifier", "SVMClassifier", "TreeEnsembleClassifier"})
_CLASS_ATTRIBUTES = ("classlabels_strings", "classlabels_ints", "classlabels_int64s")


@dataclass(frozen=True)
class InspectedArtifact:
    """An accepted file: its format, the signature it declares and its classes, if it says."""

    format: ArtifactFormat
    signature: Signature
    class_labels: tuple[str, ...] = ()
    """The class of each probability column, as the graph's label output writes it (a
    scikit-learn classifier's ``classes_``, from its ONNX classifier node); () if unknown."""


FileBytes = bytes | memoryview
"""A file's bytes: in memory, or a view of a memory-mapped file (:func:`inspect_file`)."""


def inspect_artifact(data: FileBytes) -> InspectedArtifact:
    """Accept ``data`` if it is a self-contained ONNX model or a model bundle; refuse otherwise."""
    if is_bundle(data):
        return _inspect_bundle(data)
    _refuse_pickle(data)
    model = _parse_onnx(data)
    _refuse_external_data(model)
    _check(model)
    return _inspected(model)


def inspect_file(path: Path) -> InspectedArtifact:
    """:func:`inspect_artifact` of a file, without ever holding two copies of it in memory.

    The file is parsed through a memory map (not read into memory first), and the checker
    reads it from the file once the parsed graph is dropped: given a parsed model, it would
    serialize it and parse that again, four copies of a large model at once.
    """
    with path.open("rb") as handle, _mapped(handle) as data:
        if is_bundle(data):
            return _inspect_bundle(data)
        _refuse_pickle(data)
        model = _parse_onnx(data)
    _refuse_external_data(model)  # before the checker opens the path and resolves any
    inspected = _inspected(model)
    del model
    _check(str(path))
    return inspected


@contextlib.contextmanager
def _mapped(handle: BinaryIO) -> Iterator[FileBytes]:
    """The bytes of an open file as a read-only memory map (b"" for an empty file)."""
    if os.fstat(handle.fileno()).st_size == 0:
        yield b""
        return
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            yield view
        finally:
            view.release()


def _check(model: Any) -> None:
    """Run onnx.checker over a parsed model or a file path; refuse what it rejects."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise UnsafeArtifact(
            f"refused: the ONNX model does not pass onnx.checker: {first_line}"
        ) from None


def _inspected(model: Any) -> InspectedArtifact:
    return InspectedArtifact(ArtifactFormat.ONNX, read_signature(model), class_labels(model))


def _inspect_bundle(data: FileBytes) -> InspectedArtifact:
    """A bundle's members and config pass the allow-lists (:func:`read_bundle`); its ONNX
    graph keeps weights only beside it."""
    members = read_bundle(data)
    model = _parse_onnx(members[MODEL_FILE])
    for tensor in _all_tensors(model):
        if onnx.external_data_helper.uses_external_data(tensor):
            location = next(
                (entry.value for entry in tensor.external_data if entry.key == "location"), "?"
            )
            if location not in members or location == MODEL_FILE:
                raise UnsafeArtifact(
                    f"refused: tensor {tensor.name!r} keeps its data in {location[:80]!r}, "
                    "which is not a file of the bundle; pack model.onnx.data beside model.onnx"
                )
    return InspectedArtifact(ArtifactFormat.GENAI_BUNDLE, read_signature(model))


def read_signature(model: Any) -> Signature:
    """The graph's inputs (initializers excluded) and outputs as tensor specs."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_spec(value) for value in graph.input if value.name not in initializers)
    return Signature(inputs=inputs, outputs=tuple(_spec(value) for value in graph.output))


def class_labels(model: Any) -> tuple[str, ...]:
    """The classes an ONNX-ML classifier node declares (skl2onnx writes ``classes_`` there).

    () when the graph has no such node, or several that disagree (an ensemble of
    classifiers): then nothing in the file says which column is which class.
    """
    found: set[tuple[str, ...]] = set()
    for node in model.graph.node:
        if node.domain != "ai.onnx.ml" or node.op_type not in _CLASSIFIER_OPS:
            continue
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES and (attribute.strings or attribute.ints):
                found.add(
                    tuple(s.decode("utf-8", "replace") for s in attribute.strings)
                    or tuple(str(i) for i in attribute.ints)
                )
    return found.pop() if len(found) == 1 else ()


def _sniff_unsafe(data: FileBytes) -> str | None:
    head = bytes(data[:8])
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a Python pickle (protocol {head[1]}; pickle, joblib or legacy torch.save)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save writes pickles inside one)"
    compressed = {
        b"\x1f\x8b": "gzip",
        b"\x78\x01": "zlib",
        b"\x78\x5e": "zlib",
        b"\x78\x9c": "zlib",
        b"\x78\xda": "zlib",
        b"BZh": "bzip2",
        b"\xfd7zXZ\x00": "xz",
        b"\x04\x22\x4d\x18": "lz4",
    }
    for magic, name in compressed.items():
        if head.startswith(magic):
            return f"{name}-compressed data (joblib compresses pickles this way)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file (which may hold pickled objects)"
    return None


def _refuse_pickle(data: FileBytes) -> None:
    looks_like = _sniff_unsafe(data)
    if looks_like is not None:
        raise UnsafeArtifact(f"refused: the file looks like {looks_like}; {_PICKLE_ADVICE}")


def _parse_onnx(data: FileBytes) -> Any:
    model: Any = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        model = None
    if model is None or model.ir_version <= 0 or not model.graph.node:
        raise UnsafeArtifact(
            "refused: the file is not an ONNX model (the only format Ferryman accepts); "
            "export your model to ONNX and register the .onnx file"
        )
    return model


def _refuse_external_data(model: Any) -> None:
    for tensor in _all_tensors(model):
        if onnx.external_data_helper.uses_external_data(tensor):
            location = next(
                (entry.value for entry in tensor.external_data if entry.key == "location"), "?"
            )
            raise UnsafeArtifact(
                f"refused: tensor {tensor.name!r} keeps its data in an external file "
                f"({location!r}); register a self-contained model instead (torch.onnx.export "
                "with external_data=False, or onnx.save(model, path, save_as_external_data=False))"
            )


def _all_tensors(model: Any) -> Iterator[Any]:
    """Every tensor a model holds, wherever: initializers (dense and sparse), node attributes
    (dense and sparse, one or many), subgraphs, local functions, training graphs.

    Walks the protobuf itself rather than naming the fields that hold tensors: a list of
    fields missed ``Constant``'s ``sparse_value`` and the bodies of ``model.functions``, and an
    external-data tensor there made ONNX Runtime read a file beside the replica (the data
    dir's ``control-token``) into the model's output.
    """
    pending = [model]
    while pending:
        message = pending.pop()
        if message.DESCRIPTOR is onnx.TensorProto.DESCRIPTOR:
            yield message
        for field, value in message.ListFields():
            if field.type == field.TYPE_MESSAGE:
                pending.extend(value if field.is_repeated else (value,))


def _spec(value: Any) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsafeArtifact(
            f"refused: graph value {value.name!r} is a {kind}, not a tensor; Ferryman serves "
            "tensors only (for skl2onnx classifiers pass options={id(model): {'zipmap': False}})"
        )
    tensor_type = value.type.tensor_type
    datatype = _ONNX_DATATYPES.get(tensor_type.elem_type)
    if datatype is None:
        name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
        raise UnsafeArtifact(f"refused: tensor {value.name!r} has unsupported element type {name}")
    shape: tuple[int, ...] | None = None
    if tensor_type.HasField("shape"):
        shape = tuple(
            dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim
        )
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)
