"""Images to tensors: layout, channels, size and datatype come from the signature."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ferryman.errors import InvalidInput
from ferryman.protocol.images import image_to_array
from ferryman.signature import TensorSpec


def png(mode: str, color: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (10, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("shape", "datatype", "expected_shape", "expected_value"),
    [
        ((-1, 3, 4, 5), "FP32", (1, 3, 4, 5), 1.0),
        ((-1, 4, 5, 3), "FP32", (1, 4, 5, 3), 1.0),
        ((-1, 4, 5, 1), "FP16", (1, 4, 5, 1), 1.0),
        ((-1, 4, 5), "FP64", (1, 4, 5), 1.0),
        ((-1, 16), "FP32", (1, 16), 1.0),
        ((-1, 1, 4, 4), "UINT8", (1, 1, 4, 4), 255),
    ],
)
def test_layouts(
    shape: tuple[int, ...], datatype: str, expected_shape: tuple[int, ...], expected_value: float
) -> None:
    spec = TensorSpec(name="image", datatype=datatype, shape=shape)
    array = image_to_array(png("RGB", (255, 255, 255)), spec)
    assert array.shape == expected_shape
    assert array.dtype == np.dtype(
        {"FP32": "f4", "FP16": "f2", "FP64": "f8", "UINT8": "u1"}[datatype]
    )
    assert np.all(array == expected_value)


def test_rgb_channels_stay_in_order() -> None:
    spec = TensorSpec(name="image", datatype="FP32", shape=(-1, 3, 2, 2))
    array = image_to_array(png("RGB", (255, 0, 0)), spec)
    np.testing.assert_allclose(array[0, :, 0, 0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("shape", [(-1, 7), (-1, 2, 3, 4, 5), None, (-1, 5, -1, -1)])
def test_non_image_inputs_are_refused(shape: tuple[int, ...] | None) -> None:
    with pytest.raises(InvalidInput, match="not an image input"):
        image_to_array(png("L", (0,)), TensorSpec(name="x", datatype="FP32", shape=shape))
