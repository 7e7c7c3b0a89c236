"""The engine contract: what every engine that runs a model satisfies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from ferryman.signature import Signature


class ModelEngine(Protocol):
    """Loads one model and runs it on named arrays; ``predict`` is called from one thread."""

    def load(self) -> None:
        """Make the model ready to predict (slow: call it off the event loop)."""

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on a batch; the outputs keep the batch as their first axis."""

    def unload(self) -> None:
        """Release the model's memory."""

    def metadata(self) -> Signature:
        """The inputs and outputs the model takes and gives."""


__all__ = ["ModelEngine"]
