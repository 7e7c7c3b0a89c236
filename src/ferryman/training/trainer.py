"""The PyTorch epoch loop: seeded, checkpointed every epoch, resumable to the same weights.

Everything random comes from two seeded sources whose states go into every checkpoint: the
global torch generator (weight initialisation) and a data generator (shuffling and
augmentation). A checkpoint also holds the weights, the optimiser's moments, the best
weights so far and the early-stopping counters, so a run resumed after a kill replays the
remaining epochs exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from ferryman.training.checkpoint import CheckpointData
from ferryman.training.context import RunContext
from ferryman.training.images import ImageData
from ferryman.training.networks import Architecture, build_network

Precision = Literal["auto", "fp32", "bf16", "fp16"]
EpochHook = Callable[[int, Mapping[str, float]], None]
_EVAL_BATCH = 512


@dataclass(frozen=True)
class FitSettings:
    arch: Architecture
    width: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    shift_px: int
    flip: bool
    precision: Precision
    seed: int
    threads: int = 1


@dataclass
class _Counters:
    """Early-stopping bookkeeping; saved in every checkpoint."""

    epoch: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = -1
    stale_epochs: int = 0


@dataclass(frozen=True)
class FitResult:
    network: nn.Module
    best_accuracy: float
    best_epoch: int
    epochs_run: int


@dataclass
class _Loop:
    network: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    best: dict[str, torch.Tensor]
    progress: _Counters
    device: torch.device
    scaler: torch.amp.GradScaler


def fit(
    ctx: RunContext, data: ImageData, settings: FitSettings, on_epoch: EpochHook | None = None
) -> FitResult:
    """Train on ``data`` (continuing from the run's last checkpoint) and keep the best weights.

    Small nets train fastest on one CPU thread (and a fixed thread count keeps float
    reductions in the same order, run after run); ``threads=0`` keeps PyTorch's default.
    """
    previous_threads = torch.get_num_threads()
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    try:
        return _fit(ctx, data, settings, on_epoch)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(
    ctx: RunContext, data: ImageData, settings: FitSettings, on_epoch: EpochHook | None
) -> FitResult:
    loop = _start(ctx, data, settings)
    train_x, train_y, val_x, val_y = (
        torch.from_numpy(array).to(loop.device)
        for array in (data.train_x, data.train_y, data.val_x, data.val_y)
    )
    batches = math.ceil(len(train_x) / settings.batch_size)
    ctx.progress.start(settings.epochs, loop.progress.epoch, batches)
    recorded = ctx.recorded_steps("val_accuracy")
    while loop.progress.epoch < settings.epochs and loop.progress.stale_epochs < settings.patience:
        epoch = loop.progress.epoch
        _set_learning_rate(loop.optimizer, settings, epoch)
        train_loss = _train_epoch(ctx, loop, settings, train_x, train_y)
        val_loss, val_accuracy = _evaluate(loop.network, val_x, val_y)
        metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
        _track_best(loop, val_accuracy)
        ctx.save_checkpoint(_checkpoint(loop, metrics))
        if epoch not in recorded:
            ctx.log_metrics(epoch, metrics)
        ctx.progress.epoch_done(epoch, metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    loop.network.load_state_dict(loop.best)
    return FitResult(
        loop.network.eval().cpu(),
        loop.progress.best_accuracy,
        loop.progress.best_epoch,
        loop.progress.epoch,
    )


def predict_probabilities(
    network: nn.Module, inputs: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Softmax scores of ``network`` (on the CPU) over ``inputs``, in fp32."""
    network = network.eval().cpu()
    parts = []
    with torch.no_grad():
        for start in range(0, len(inputs), _EVAL_BATCH):
            batch = torch.from_numpy(inputs[start : start + _EVAL_BATCH])
            parts.append(torch.softmax(network(batch), dim=1).numpy())
    return np.concatenate(parts).astype(np.float32)


def _start(ctx: RunContext, data: ImageData, settings: FitSettings) -> _Loop:
    torch.manual_seed(settings.seed)
    channels, _, _ = data.image_shape
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    network = build_network(settings.arch, channels, len(data.labels), settings.width).to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    generator = torch.Generator().manual_seed(settings.seed)
    best = {name: value.detach().clone() for name, value in network.state_dict().items()}
    # fp16 gradients underflow without loss scaling; for fp32 and bf16 the scaler is a no-op.
    is_fp16 = _autocast(settings.precision, device) is torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=is_fp16)
    loop = _Loop(network, optimizer, generator, best, _Counters(), device, scaler)
    checkpoint = ctx.load_checkpoint()
    if checkpoint is not None:
        _restore(loop, checkpoint)
    return loop


def _set_learning_rate(optimizer: torch.optim.Optimizer, settings: FitSettings, epoch: int) -> None:
    """Cosine decay computed from the epoch alone, so it needs no state of its own."""
    scale = 0.5 * (1 + math.cos(math.pi * epoch / max(1, settings.epochs)))
    for group in optimizer.param_groups:
        group["lr"] = settings.lr * (0.05 + 0.95 * scale)


def _train_epoch(
    ctx: RunContext,
    loop: _Loop,
    settings: FitSettings,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> float:
    loop.network.train()
    order = torch.randperm(len(inputs), generator=loop.generator).to(loop.device)
    total_loss, seen = 0.0, 0
    autocast = _autocast(settings.precision, loop.device)
    for batch, start in enumerate(range(0, len(inputs), settings.batch_size)):
        rows = order[start : start + settings.batch_size]
        images = _augment(inputs[rows], loop.generator, settings)
        with torch.autocast(loop.device.type, dtype=autocast, enabled=autocast is not None):
            loss = functional.cross_entropy(loop.network(images), targets[rows])
        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        total_loss += float(loss.detach()) * len(rows)
        seen += len(rows)
        ctx.progress.batch_done(loop.progress.epoch, batch)
    return total_loss / seen


def _autocast(precision: Precision, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast where asked; ``auto`` means bf16 on CUDA and none on the CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _augment(
    images: torch.Tensor, generator: torch.Generator, settings: FitSettings
) -> torch.Tensor:
    """Random shifts of up to ``shift_px`` pixels (zero padding) and optional h-flips."""
    count, _, height, width = images.shape
    shift = settings.shift_px
    if shift > 0:
        padded = functional.pad(images, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (count,), generator=generator).to(images.device)
        dx = torch.randint(0, 2 * shift + 1, (count,), generator=generator).to(images.device)
        rows = dy[:, None] + torch.arange(height, device=images.device)[None, :]
        cols = dx[:, None] + torch.arange(width, device=images.device)[None, :]
        picked = padded[
            torch.arange(count, device=images.device)[:, None, None],
            :,
            rows[:, :, None],
            cols[:, None, :],
        ]
        images = picked.permute(0, 3, 1, 2)
    if settings.flip:
        flips = (torch.rand(count, generator=generator) < 0.5).to(images.device)
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
    return images.contiguous()


def _evaluate(
    network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[float, float]:
    network.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(inputs), _EVAL_BATCH):
            logits = network(inputs[start : start + _EVAL_BATCH])
            batch_targets = targets[start : start + _EVAL_BATCH]
            total_loss += float(functional.cross_entropy(logits, batch_targets, reduction="sum"))
            correct += int((logits.argmax(dim=1) == batch_targets).sum())
    return total_loss / len(inputs), correct / len(inputs)


def _track_best(loop: _Loop, val_accuracy: float) -> None:
    progress = loop.progress
    if val_accuracy > progress.best_accuracy:
        progress.best_accuracy, progress.best_epoch, progress.stale_epochs = (
            val_accuracy,
            progress.epoch,
            0,
        )
        loop.best = {k: v.detach().clone() for k, v in loop.network.state_dict().items()}
    else:
        progress.stale_epochs += 1
    progress.epoch += 1


def _checkpoint(loop: _Loop, metrics: Mapping[str, float]) -> CheckpointData:
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, value in loop.network.state_dict().items():
        arrays[f"model/{name}"] = _numpy(value)
    for name, value in loop.best.items():
        arrays[f"best/{name}"] = _numpy(value)
    optimizer_state = loop.optimizer.state_dict()
    for param_id, slots in optimizer_state["state"].items():
        for slot, value in slots.items():
            arrays[f"optim/{param_id}/{slot}"] = _numpy(value)
    arrays["rng/torch"] = _numpy(torch.get_rng_state())
    arrays["rng/data"] = _numpy(loop.generator.get_state())
    state = {
        "progress": vars(loop.progress),
        "param_groups": optimizer_state["param_groups"],
        "metrics": dict(metrics),
        "scaler": loop.scaler.state_dict(),
    }
    return CheckpointData(step=loop.progress.epoch - 1, arrays=arrays, state=state)


def _restore(loop: _Loop, checkpoint: CheckpointData) -> None:
    tensors = {name: torch.from_numpy(np.array(a)) for name, a in checkpoint.arrays.items()}
    loop.network.load_state_dict(_prefixed(tensors, "model/"))
    loop.best = {k: v.to(loop.device) for k, v in _prefixed(tensors, "best/").items()}
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in _prefixed(tensors, "optim/").items():
        param_id, slot = key.split("/", 1)
        slots.setdefault(int(param_id), {})[slot] = value
    loop.optimizer.load_state_dict(
        {"state": slots, "param_groups": checkpoint.state["param_groups"]}
    )
    torch.set_rng_state(tensors["rng/torch"])
    loop.generator.set_state(tensors["rng/data"])
    loop.progress = _Counters(**checkpoint.state["progress"])
    if checkpoint.state.get("scaler"):
        loop.scaler.load_state_dict(checkpoint.state["scaler"])


def _prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {
        name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)
    }


def _numpy(tensor: torch.Tensor) -> npt.NDArray[Any]:
    array: npt.NDArray[Any] = tensor.detach().cpu().numpy()
    return array
