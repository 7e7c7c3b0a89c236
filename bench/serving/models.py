"""Benchmark models built with onnx.helper: a digits-sized MLP and a ResNet-18-sized CNN.

Random weights (seeded): the benchmark measures serving, not accuracy.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Collects nodes and initializers; names come from a counter."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def weight(self, shape: tuple[int, ...], scale: float) -> str:
        name = self.name("w")
        array = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.weights.append(numpy_helper.from_array(array, name))
        return name

    def op(self, kind: str, inputs: list[str], **attributes: object) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attributes))
        return out

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int, *, relu: bool) -> str:
        scale = (2.0 / (c_in * kernel * kernel)) ** 0.5
        w = self.weight((c_out, c_in, kernel, kernel), scale)
        b = self.weight((c_out,), 0.01)
        pad = kernel // 2
        y = self.op("Conv", [x, w, b], strides=[stride, stride], pads=[pad] * 4)
        return self.op("Relu", [y]) if relu else y

    def model(self, graph_name: str, x: onnx.ValueInfoProto, y: onnx.ValueInfoProto) -> bytes:
        self.nodes[-1].output[0] = y.name
        graph = helper.make_graph(self.nodes, graph_name, [x], [y], initializer=self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model.SerializeToString()


def digits_mlp() -> bytes:
    """pixels FP32 [N, 1, 8, 8] -> probs [N, 10]: 64-128-10 with ReLU and softmax."""
    g = GraphBuilder(seed=1)
    flat = g.op("Flatten", ["pixels"], axis=1)
    hidden = g.op("Relu", [g.op("Gemm", [flat, g.weight((64, 128), 0.1), g.weight((128,), 0.1)])])
    logits = g.op("Gemm", [hidden, g.weight((128, 10), 0.1), g.weight((10,), 0.1)])
    g.op("Softmax", [logits], axis=1)
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])
    return g.model("digits", x, y)


def resnet18() -> bytes:
    """image FP32 [N, 3, 224, 224] -> logits [N, 1000]: ResNet-18 (BatchNorm folded)."""
    g = GraphBuilder(seed=2)
    x = g.conv("image", 3, 64, 7, 2, relu=True)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            y = g.conv(x, c_in, c_out, 3, s, relu=True)
            y = g.conv(y, c_out, c_out, 3, 1, relu=False)
            shortcut = x if s == 1 and c_in == c_out else g.conv(x, c_in, c_out, 1, s, relu=False)
            x = g.op("Relu", [g.op("Add", [y, shortcut])])
            c_in = c_out
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.op("Gemm", [pooled, g.weight((512, 1000), 0.05), g.weight((1000,), 0.01)])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])
    return g.model("resnet18", image, logits)
