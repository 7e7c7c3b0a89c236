"""INT8 quantisation: which mode a graph gets, and that the result runs and is smaller."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier

from ferryman.artifacts import inspect_artifact
from ferryman.errors import InvalidInput
from ferryman.export import QuantizationMode, choose_quantization, quantize
from ferryman.export.conversion import convert_sklearn
from ferryman.export.torch_onnx import export_torch
from tests.export.test_gate import linear_softmax


def conv_net_bytes() -> bytes:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(512, 4),
    )
    return export_torch(net, torch.zeros(1, 1, 8, 8), "pixels", "logits")


def test_export_is_self_contained_with_a_dynamic_batch_axis() -> None:
    data = conv_net_bytes()
    signature = inspect_artifact(data).signature
    assert [s.describe() for s in signature.inputs] == ["pixels FP32 [-1, 1, 8, 8]"]
    session = ort.InferenceSession(data)
    for batch in (1, 32):
        (out,) = session.run(None, {"pixels": np.zeros((batch, 1, 8, 8), np.float32)})
        assert out.shape == (batch, 4)


def test_the_mode_follows_the_graph() -> None:
    tree = DecisionTreeClassifier().fit(np.eye(3, dtype=np.float32), [0, 1, 2])
    assert choose_quantization(conv_net_bytes()) is QuantizationMode.STATIC
    assert (
        choose_quantization(linear_softmax(np.ones((4, 2), np.float32))) is QuantizationMode.DYNAMIC
    )
    assert choose_quantization(convert_sklearn(tree, 3)) is None


@pytest.mark.parametrize("mode", list(QuantizationMode))
def test_quantized_models_run_and_pass_the_format_gate(mode: QuantizationMode) -> None:
    fp32 = conv_net_bytes()
    calibration = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    int8 = quantize(fp32, mode, "pixels", calibration)
    inspect_artifact(int8)
    (out,) = ort.InferenceSession(int8).run(None, {"pixels": calibration[:5]})
    assert out.shape == (5, 4)
    assert len(int8) < len(fp32)


def test_static_quantization_needs_calibration_data() -> None:
    with pytest.raises(InvalidInput, match="calibration"):
        quantize(conv_net_bytes(), QuantizationMode.STATIC, "pixels", None)
