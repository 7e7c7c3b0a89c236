"""The demo's bad model: the digits recipe on data whose labelling pipeline has a bug.

Classes 1 and 7, and 3 and 8, swapped their labels everywhere — training and validation
alike, as a bug upstream of both would. Its validation accuracy, measured against the same
wrong labels, looks as good as any other version's; only the labels that clients send back
as feedback show that it calls every 7 a 1. This is a training function of the user's own
kind (``module:function``), as anyone can write one.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from ferryman.training.context import Registration, RunContext
from ferryman.training.image import ImageParams, fit_images, load_image_data, publish
from ferryman.training.images import ImageData
from ferryman.training.params import parse_params

RECIPE = "ferryman.demo.recipes/train_with_swapped_labels"  # module/function, as runs record it
SWAPS = {1: 7, 7: 1, 3: 8, 8: 3}


def train_with_swapped_labels(ctx: RunContext) -> Registration:
    """The digits recipe, trained and validated on labels with 1↔7 and 3↔8 swapped."""
    params = parse_params(ImageParams, ctx.params, ctx.run.recipe)
    data = swap_labels(load_image_data(params), SWAPS)
    return publish(ctx, params, data, fit_images(ctx, params, data, None))


def swap_labels(data: ImageData, swaps: dict[int, int]) -> ImageData:
    """The same images with labels mapped through ``swaps`` (and a fingerprint saying so)."""
    table = np.arange(len(data.labels))
    for source, target in swaps.items():
        table[source] = target
    tag = ",".join(f"{a}:{b}" for a, b in sorted(swaps.items()))
    digest = hashlib.sha256(f"{data.fingerprint} labels swapped {tag}".encode()).hexdigest()
    return replace(
        data,
        train_y=table[data.train_y],
        val_y=table[data.val_y],
        fingerprint=f"sha256-{digest}",
    )
