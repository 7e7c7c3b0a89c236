"""The ``image-classifier`` recipe (and ``digits``, its built-in-data short form).

Trains a small CNN or ResNet-style net on an ImageFolder (``--data DIR``) or, without data,
on scikit-learn's digits; then exports ``onnx-fp32`` (softmax probabilities, dynamic batch
axis) and ``onnx-int8`` (static QDQ, calibrated on training images), measures both behind
the gate and registers the version with its metrics, params, run, data fingerprint and
reference data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ferryman.export import EvaluationSet, QuantizationMode, choose_quantization
from ferryman.export.torch_onnx import export_torch
from ferryman.training.context import Candidate, Registration, RunContext
from ferryman.training.images import ImageData, digits_data, folder_data
from ferryman.training.networks import Architecture, WithSoftmax
from ferryman.training.params import RecipeParams, parse_params
from ferryman.training.summaries import build_reference, image_summaries
from ferryman.training.trainer import (
    EpochHook,
    FitResult,
    FitSettings,
    Precision,
    fit,
    predict_probabilities,
)

RECIPE = "image-classifier"
OUTPUT_NAME = "probabilities"
CALIBRATION_IMAGES = 256


class ImageParams(RecipeParams):
    """Params of the image recipe (``--param key=value``)."""

    arch: Architecture = "cnn"
    width: int = Field(default=16, ge=2, le=512)
    epochs: int = Field(default=12, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    lr: float = Field(default=3e-3, gt=0, le=10)
    weight_decay: float = Field(default=1e-4, ge=0, le=1)
    patience: int = Field(default=4, ge=1, description="epochs without improvement before stopping")
    shift_px: int | None = Field(default=None, ge=0, le=64, description="None: image size / 8")
    flip: bool = False
    precision: Precision = "auto"
    seed: int = 0
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    image_size: int = Field(default=32, ge=4, le=1024, description="folders only: resize to")
    channels: Literal[1, 3] = 3
    int8: Literal["auto", "static", "dynamic", "off"] = "auto"
    threads: int = Field(
        default=1, ge=0, le=1024, description="CPU threads for PyTorch; 0: its default"
    )


def train_image_classifier(ctx: RunContext) -> Registration:
    """Recipe entry point: load, fit (resuming if the run has checkpoints), publish."""
    params = parse_params(ImageParams, ctx.params, ctx.run.recipe)
    data = load_image_data(params)
    result = fit(ctx, data, fit_settings(params, data))
    return publish(ctx, params, data, result)


def load_image_data(params: ImageParams) -> ImageData:
    if params.data is None:
        return digits_data(params.seed, params.val_fraction)
    return folder_data(
        Path(params.data), params.seed, params.val_fraction, params.image_size, params.channels
    )


def fit_settings(params: ImageParams, data: ImageData) -> FitSettings:
    _, height, _ = data.image_shape
    shift = params.shift_px if params.shift_px is not None else max(1, height // 8)
    return FitSettings(
        arch=params.arch,
        width=params.width,
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        weight_decay=params.weight_decay,
        patience=params.patience,
        shift_px=shift,
        flip=params.flip,
        precision=params.precision,
        seed=params.seed,
        threads=params.threads,
    )


def fit_images(
    ctx: RunContext, params: ImageParams, data: ImageData, on_epoch: EpochHook | None
) -> FitResult:
    """Fit only (no registration): what a tuning trial runs."""
    return fit(ctx, data, fit_settings(params, data), on_epoch)


def publish(
    ctx: RunContext, params: ImageParams, data: ImageData, result: FitResult
) -> Registration:
    """Export the fitted net, gate its variants and register the version."""
    example = torch.from_numpy(data.val_x[:1])
    onnx_bytes = export_torch(WithSoftmax(result.network), example, data.input_name, OUTPUT_NAME)
    evaluation = EvaluationSet(
        data.input_name,
        OUTPUT_NAME,
        data.val_x,
        data.val_y,
        predict_probabilities(result.network, data.val_x),
    )
    reference = build_reference(onnx_bytes, evaluation, data.labels, image_summaries(data.val_x))
    metrics = {
        "val_accuracy": result.best_accuracy,
        "best_epoch": float(result.best_epoch),
        "epochs_run": float(result.epochs_run),
    }
    return ctx.register(
        Candidate(
            onnx_bytes=onnx_bytes,
            evaluation=evaluation,
            metrics=metrics,
            reference=reference,
            data_fingerprint=data.fingerprint,
            quantization=_quantization(params, onnx_bytes),
            calibration=data.train_x[:CALIBRATION_IMAGES],
        )
    )


def _quantization(params: ImageParams, onnx_bytes: bytes) -> QuantizationMode | None:
    if params.int8 == "off":
        return None
    if params.int8 == "auto":
        return choose_quantization(onnx_bytes)
    return QuantizationMode(params.int8)
