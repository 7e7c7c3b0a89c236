"""The image classifiers the recipe trains: a small CNN and a ResNet-style net.

Both take ``[N, C, H, W]`` images and give logits; :class:`WithSoftmax` is what gets
exported, so served models answer with probabilities.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Architecture = Literal["cnn", "resnet"]
POOLED_SIDE = 4


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool, pooling to 4x4 and a linear head."""

    def __init__(self, channels: int, classes: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(POOLED_SIDE),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * POOLED_SIDE * POOLED_SIDE, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(images))
        return logits


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input (projected when the width changes)."""

    def __init__(self, in_width: int, out_width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_width, out_width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_width),
            nn.ReLU(),
            nn.Conv2d(out_width, out_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_width),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_width != out_width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_width, out_width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_width),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A stem, two residual stages (the second halves the resolution), pooling and a head."""

    def __init__(self, channels: int, classes: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.stages = nn.Sequential(
            ResidualBlock(width, width, 1), ResidualBlock(width, 2 * width, 2)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.stages(self.stem(images)))
        return logits


class WithSoftmax(nn.Module):
    """The served form of a classifier: probabilities instead of logits."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(images), dim=1)


def build_network(arch: Architecture, channels: int, classes: int, width: int) -> nn.Module:
    if arch == "resnet":
        return SmallResNet(channels, classes, width)
    return SmallCNN(channels, classes, width)
