"""The three benchmark models, built here with random (seeded) weights and exported to ONNX.

- ``digits``: a small CNN on 1x8x8 images (the demo's digits shape), plain torch.
- ``tabular``: a gradient-boosted tree classifier (scikit-learn GradientBoosting, 20
  features, 100 trees of depth 4) converted with skl2onnx (its HistGradientBoosting
  converter fails on the installed scikit-learn).
- ``resnet18``: ResNet-18 at 224x224, written in plain torch (no torchvision needed).

Each comes with its input name and one batch-1 JSON body in the Open Inference Protocol's
shape, which every server in the benchmark is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class BenchModel:
    """A model file and what a request to it carries."""

    name: str
    path: Path
    input_name: str
    shape: tuple[int, ...]
    """One request's input shape (batch of 1)."""
    datatype: str = "FP32"
    min_seconds: int = 0
    """Shortest cell worth measuring: a slow model answers few requests in a short one."""

    def body(self) -> bytes:
        """One batch-1 request, V2 JSON, the same bytes for every server."""
        rng = np.random.default_rng(0)
        data = rng.random(self.shape, dtype=np.float32).round(4).ravel().tolist()
        document = {"inputs": [{"name": self.input_name, "shape": list(self.shape),
                                "datatype": self.datatype, "data": data}]}  # fmt: skip
        return json.dumps(document, separators=(",", ":")).encode()


class DigitsCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                                  nn.Linear(64, 10))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(x)), dim=1)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))  # fmt: skip
        layers, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [Block(c_in, c_out, stride), Block(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _export(module: nn.Module, example: torch.Tensor, path: Path, name: str) -> None:
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module, (example,), str(path), input_names=[name], output_names=["probs"],
            dynamic_axes={name: {0: "N"}, "probs": {0: "N"}}, opset_version=17, dynamo=False,
        )  # fmt: skip


def _tabular(path: Path, features: int) -> None:
    from skl2onnx import to_onnx  # noqa: PLC0415 - only the builder needs it
    from sklearn.ensemble import GradientBoostingClassifier  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4_000, features)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=4, random_state=0).fit(x, y)
    opsets = {"": 17, "ai.onnx.ml": 3}
    onnx_model = to_onnx(model, x[:1], options={"zipmap": False}, target_opset=opsets)
    path.write_bytes(onnx_model.SerializeToString())


def build(directory: Path) -> list[BenchModel]:
    """Write the three models under ``directory`` (once; kept between runs)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    digits = BenchModel("digits", directory / "digits.onnx", "pixels", (1, 1, 8, 8))
    tabular = BenchModel("tabular", directory / "tabular.onnx", "X", (1, 20))
    resnet = BenchModel(
        "resnet18", directory / "resnet18.onnx", "image", (1, 3, 224, 224), min_seconds=10
    )
    if not digits.path.exists():
        _export(DigitsCnn(), torch.zeros(digits.shape), digits.path, digits.input_name)
    if not tabular.path.exists():
        _tabular(tabular.path, tabular.shape[1])
    if not resnet.path.exists():
        _export(ResNet18(), torch.zeros(resnet.shape), resnet.path, resnet.input_name)
    return [digits, tabular, resnet]
