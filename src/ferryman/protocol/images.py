"""Images at the edge: PNG/JPEG bytes to the tensor an image model's signature asks for.

The image is decoded by Pillow, converted to grayscale or RGB by the signature's channel
count, resized to its spatial dims and scaled to [0, 1]. Layouts: NCHW and NHWC (rank 4),
NHW (rank 3), and N x (H*W) for models that take a flattened square grayscale image.
"""

from __future__ import annotations

import base64
import binascii
import io
import math

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferryman.errors import InvalidInput
from ferryman.protocol.codecs import NUMPY_DTYPES
from ferryman.signature import TensorSpec

MAX_IMAGE_PIXELS = 4096 * 4096
"""Decoded size limit: a small PNG can claim gigapixels (a decompression bomb)."""


def decode_base64_image(text: str) -> bytes:
    """The bytes of a base64 image, with or without a ``data:image/...;base64,`` prefix."""
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            '"image" is not valid base64; send PNG/JPEG bytes base64-encoded'
        ) from None


def image_to_array(data: bytes, spec: TensorSpec) -> np.ndarray:
    """One image as a batch of one, shaped and typed for the input ``spec``."""
    height, width, channels, layout = _geometry(spec)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidInput(
                    f"the image is {image.width}x{image.height}; the limit is "
                    f"{MAX_IMAGE_PIXELS} pixels"
                )
            converted = image.convert("L" if channels == 1 else "RGB")
            resized = converted.resize((width, height), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise InvalidInput("the body is not a PNG or JPEG image Pillow can read") from None
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    pixels = pixels.reshape(height, width, channels)
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    dtype = NUMPY_DTYPES.get(spec.datatype, np.dtype(np.float32))
    if dtype.kind != "f":
        pixels = pixels * 255.0
    return pixels.reshape((1, *_batchless(spec, pixels.shape, layout))).astype(dtype)


def _geometry(spec: TensorSpec) -> tuple[int, int, int, str]:
    shape = spec.shape
    if shape is not None and len(shape) == 4 and shape[1] in (1, 3) and min(shape[2:]) > 0:
        return shape[2], shape[3], shape[1], "NCHW"
    if shape is not None and len(shape) == 4 and shape[3] in (1, 3) and min(shape[1:3]) > 0:
        return shape[1], shape[2], shape[3], "NHWC"
    if shape is not None and len(shape) == 3 and min(shape[1:]) > 0:
        return shape[1], shape[2], 1, "NHW"
    if (
        shape is not None
        and len(shape) == 2
        and shape[1] > 0
        and math.isqrt(shape[1]) ** 2 == shape[1]
    ):
        side = math.isqrt(shape[1])
        return side, side, 1, "flat"
    raise InvalidInput(
        f"input {spec.describe()} is not an image input (expected NCHW, NHWC, NHW or a "
        "flattened square); send a JSON row instead"
    )


def _batchless(spec: TensorSpec, shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout == "NHW":
        return shape[:2]
    if layout == "flat":
        return (int(np.prod(shape)),)
    return shape
