"""Image data for the image-classifier recipe: the built-in digits, or an ImageFolder.

Both become float32 arrays shaped ``[N, C, H, W]`` with values in [0, 1], split into
train and validation sets by a seeded, stratified split. The data fingerprint is the sha256
of the pixels, the labels and the split settings, so the same files and seed give the same
fingerprint on any machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ferryman.errors import InvalidInput

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
DIGITS_MAX_VALUE = 16.0


@dataclass(frozen=True)
class ImageData:
    """A seeded train/validation split of labelled images."""

    train_x: npt.NDArray[np.float32]
    train_y: npt.NDArray[np.int64]
    val_x: npt.NDArray[np.float32]
    val_y: npt.NDArray[np.int64]
    labels: tuple[str, ...]
    fingerprint: str
    input_name: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train_x.shape[1:]
        return channels, height, width


def digits_data(seed: int, val_fraction: float) -> ImageData:
    """scikit-learn's 8x8 handwritten digits (1 797 images, shipped with it: no download)."""
    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / DIGITS_MAX_VALUE)[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    names = tuple(str(name) for name in bunch.target_names)
    return _split(images, labels, names, seed=seed, val_fraction=val_fraction, input_name="pixels")


def folder_data(
    root: Path, seed: int, val_fraction: float, image_size: int, channels: int
) -> ImageData:
    """An ImageFolder: one subfolder per class holding PNG/JPEG files, resized to a square."""
    if not root.is_dir():
        raise InvalidInput(f"image data {str(root)!r} is not a directory of class folders")
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    if len(classes) < 2:
        raise InvalidInput(f"{str(root)!r} has {len(classes)} class folders; need at least 2")
    images: list[npt.NDArray[np.float32]] = []
    targets: list[int] = []
    for index, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                images.append(_read_image(path, image_size, channels))
                targets.append(index)
    if not images:
        raise InvalidInput(f"{str(root)!r} holds no .png/.jpg/.jpeg files in its class folders")
    return _split(
        np.stack(images),
        np.asarray(targets, dtype=np.int64),
        tuple(classes),
        seed=seed,
        val_fraction=val_fraction,
        input_name="image",
    )


def _read_image(path: Path, image_size: int, channels: int) -> npt.NDArray[np.float32]:
    try:
        with Image.open(path) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
            resized = converted.resize((image_size, image_size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"cannot read image {path.name!r}: {exc}") from None
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    return pixels[None, :, :] if channels == 1 else pixels.transpose(2, 0, 1)


def _split(
    images: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    names: tuple[str, ...],
    *,
    seed: int,
    val_fraction: float,
    input_name: str,
) -> ImageData:
    train_x, val_x, train_y, val_y = train_test_split(
        images, labels, test_size=val_fraction, random_state=seed, stratify=labels
    )
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(labels.tobytes())
    digest.update(f"names={','.join(names)};seed={seed};val={val_fraction}".encode())
    return ImageData(
        train_x=np.ascontiguousarray(train_x),
        train_y=np.asarray(train_y, dtype=np.int64),
        val_x=np.ascontiguousarray(val_x),
        val_y=np.asarray(val_y, dtype=np.int64),
        labels=names,
        fingerprint=f"sha256-{digest.hexdigest()}",
        input_name=input_name,
    )
