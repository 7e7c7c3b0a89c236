"""The format gate: ONNX in, everything executable (or unknown) out, with the reason."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from onnx import TensorProto, helper

from ferryman.artifacts import ArtifactFormat, InspectedArtifact, inspect_artifact, inspect_file
from ferryman.errors import UnsafeArtifact
from ferryman.registry import Registry
from tests.conftest import make_external_data_onnx, make_onnx


class _Canary:
    """Unpickling this creates a file: the proof that something loaded the pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_onnx_is_accepted_and_its_signature_read(onnx_bytes: Callable[..., bytes]) -> None:
    inspected = inspect_artifact(onnx_bytes(width=8))
    assert inspected.format is ArtifactFormat.ONNX
    assert [s.describe() for s in inspected.signature.inputs] == ["x FP32 [-1, 8]"]
    assert [s.describe() for s in inspected.signature.outputs] == ["y FP32 [-1, 8]"]


def _pickle_payloads(canary: Path) -> dict[str, bytes]:
    pickled = pickle.dumps(_Canary(canary), protocol=4)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:  # the layout torch.save writes
        zipped.writestr("archive/data.pkl", pickled)
    return {
        "pickle": pickled,
        "pickle-protocol-2": pickle.dumps(_Canary(canary), protocol=2),
        "torch.save": archive.getvalue(),
        "joblib-zlib": zlib.compress(pickled),
        "joblib-gzip": gzip.compress(pickled),
    }


@pytest.mark.parametrize(
    "kind", ["pickle", "pickle-protocol-2", "torch.save", "joblib-zlib", "joblib-gzip"]
)
def test_pickles_are_refused_and_never_loaded(
    kind: str, tmp_path: Path, registry: Registry
) -> None:
    canary = tmp_path / "CANARY"
    payload = _pickle_payloads(canary)[kind]
    with pytest.raises(UnsafeArtifact, match="never stores or loads them") as refused:
        registry.register("digits", payload, "mallory")

    assert refused.value.status_code == 415
    assert "export the model to ONNX" in refused.value.message
    assert not canary.exists()
    assert registry.list_models() == []
    stored = [p for p in (registry.store.root / "objects").rglob("*") if p.is_file()]  # type: ignore[attr-defined]
    assert stored == []


def test_the_canary_payload_is_real(tmp_path: Path) -> None:
    """Guard the guard: loading the payload does create the canary."""
    canary = tmp_path / "CANARY"
    pickle.loads(_pickle_payloads(canary)["pickle"])  # the point of this test
    assert canary.exists()


@pytest.mark.parametrize("data", [b"", b"hello world", os.urandom(4096), b"\x08\x07" * 100])
def test_non_models_are_refused(data: bytes) -> None:
    with pytest.raises(UnsafeArtifact, match="not an ONNX model"):
        inspect_artifact(data)


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "weights.bin"])
def test_external_data_is_refused(location: str) -> None:
    """RELIABILITY B6: ONNX external_data.location can point anywhere; we never follow it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0] * 4)
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("float_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [weights]
    )
    model = helper.make_model(graph)
    with pytest.raises(UnsafeArtifact, match="external file"):
        inspect_artifact(model.SerializeToString())


@pytest.mark.parametrize("where", ["sparse-constant", "function"])
def test_external_data_is_refused_wherever_the_tensor_hides(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file beside the server (its cwd holds the default data dir) passes onnx.checker, and
    ONNX Runtime, loading from bytes, read it into the output: the control token, to anyone
    who could call the endpoint. The gate walks every tensor, not a list of fields."""
    (tmp_path / "ferryman-data").mkdir()
    (tmp_path / "ferryman-data" / "control-token").write_text("secret-token-0123456789")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeArtifact, match="external file"):
        inspect_artifact(make_external_data_onnx(where, "ferryman-data/control-token"))


def test_sequence_outputs_are_refused_with_the_zipmap_hint() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    seq = helper.make_tensor_sequence_value_info("probabilities", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["probabilities"])], "g", [x], [seq]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsafeArtifact, match="zipmap"):
        inspect_artifact(model.SerializeToString())


def test_models_failing_the_checker_are_refused() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsafeArtifact, match=r"onnx\.checker"):
        inspect_artifact(model.SerializeToString())


def _no_such_op() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g", [x], [y])
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                 .SerializeToString())  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        make_onnx(width=8),
        b"",
        b"\x80\x04" + b"\x00" * 64,
        b"\x08\x07" * 100,
        make_external_data_onnx("function", "control-token"),
        _no_such_op(),
    ],
    ids=["onnx", "empty", "pickle", "garbage", "external-data", "checker"],
)
def test_a_file_is_judged_as_its_bytes_are(data: bytes, tmp_path: Path) -> None:
    """inspect_file (an upload, memory-mapped) accepts and refuses what inspect_artifact does;
    a model naming external data is refused before the checker opens the file's folder."""
    (tmp_path / "control-token").write_text("secret-token-0123456789")
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    assert _judged(inspect_file, path) == _judged(inspect_artifact, data)


def _judged(inspect: Callable[[Any], InspectedArtifact], source: object) -> object:
    """What ``inspect`` made of ``source``: the inspection, or the refusal's message."""
    try:
        return inspect(source)
    except UnsafeArtifact as exc:
        return exc.message
