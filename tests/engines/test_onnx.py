"""The ONNX runtime: load, predict, metadata, unload, and the format gate in front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferryman.artifacts import ArtifactFormat, InspectedArtifact, inspect_artifact
from ferryman.engines import ModelEngine
from ferryman.engines import onnx as onnx_engine
from ferryman.engines.function import FunctionEngine
from ferryman.engines.onnx import OnnxEngine
from ferryman.errors import Unavailable, UnsafeArtifact
from tests.conftest import make_external_data_onnx, make_onnx
from tests.serving.conftest import affine_model


def test_load_predict_unload() -> None:
    runtime: ModelEngine = OnnxEngine(affine_model(), intra_op_threads=1)
    assert [spec.describe() for spec in runtime.metadata().inputs] == ["x FP32 [-1, 4]"]
    runtime.load()
    outputs = runtime.predict({"x": np.ones((3, 4), dtype=np.float32)})
    np.testing.assert_array_equal(outputs["y"], np.full((3, 4), 3.0))
    assert set(outputs) == {"y", "p"}
    runtime.unload()
    with pytest.raises(Unavailable, match="not loaded"):
        runtime.predict({"x": np.ones((1, 4), dtype=np.float32)})
    with pytest.raises(Unavailable, match="unloaded"):
        runtime.load()


def test_cpu_provider_when_no_gpu() -> None:
    runtime = OnnxEngine(affine_model())
    assert runtime.providers == []
    runtime.load()
    assert runtime.providers[-1] == "CPUExecutionProvider"


@pytest.mark.parametrize("data", [b"\x80\x04\x95junk", b"PK\x03\x04zip", b"not a model"])
def test_non_onnx_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(UnsafeArtifact):
        OnnxEngine(data)


def test_callable_runtime_is_a_model_runtime() -> None:
    runtime: ModelEngine = FunctionEngine(
        OnnxEngine(affine_model()).metadata(), lambda inputs: {"y": inputs["x"]}
    )
    runtime.load()
    assert runtime.predict({"x": np.zeros(1)})["y"].shape == (1,)


def test_a_tensor_past_the_gate_reads_no_file_beside_the_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defense in depth: with the gate out of the way, ONNX Runtime resolves external data in
    an empty folder, not in the replica's working directory."""
    (tmp_path / "control-token").write_bytes(b"secret-token-0123456789")
    monkeypatch.chdir(tmp_path)
    model = make_external_data_onnx("function", "control-token")
    signature = inspect_artifact(make_onnx()).signature
    monkeypatch.setattr(onnx_engine, "inspect_artifact", lambda _: InspectedArtifact(
        ArtifactFormat.ONNX, signature))  # fmt: skip
    engine = OnnxEngine(model)
    with pytest.raises(Exception, match="External data path"):
        engine.load()
