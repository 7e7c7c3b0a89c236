"""ONNX Runtime: the one engine that runs artifacts, from bytes that passed the format gate.

GPU execution providers (TensorRT, CUDA) are used when this onnxruntime build has them,
the CPU provider otherwise.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime  # type: ignore[import-untyped,unused-ignore]

from ferryman.artifacts import inspect_artifact
from ferryman.errors import Unavailable
from ferryman.signature import Signature

logger = logging.getLogger(__name__)

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
EXTERNAL_DATA_FOLDER = "session.model_external_initializers_file_folder_path"
"""Where ONNX Runtime looks for a model's external data files when it loads from bytes."""


class OnnxEngine:
    """Serves one ONNX model held in memory.

    The signature comes from the format gate, so a file that is not a self-contained ONNX
    model is refused before ONNX Runtime parses it.
    """

    def __init__(self, model_bytes: bytes, intra_op_threads: int = 0) -> None:
        inspected = inspect_artifact(model_bytes)
        self._signature = inspected.signature
        self.class_labels = inspected.class_labels
        """The classes the graph declares (see ``InspectedArtifact.class_labels``)."""
        self._model_bytes: bytes | None = model_bytes
        self._intra_op_threads = intra_op_threads
        self._session: Any = None
        self._output_names: list[str] = []

    def load(self) -> None:
        if self._model_bytes is None:
            raise Unavailable("the model was unloaded; start a new replica to serve it")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads spin by default, taking the cores the event loop needs
        # between model calls; a replica shares its CPUs with its HTTP work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = set(onnxruntime.get_available_providers())
        providers = [name for name in PREFERRED_PROVIDERS if name in available]
        with tempfile.TemporaryDirectory(prefix="ferryman-no-external-data-") as empty:
            # The gate refuses external data; should a tensor ever slip past it, ONNX Runtime
            # resolves its file in this empty folder, never beside the replica (its cwd).
            options.add_session_config_entry(EXTERNAL_DATA_FOLDER, empty)
            self._session = onnxruntime.InferenceSession(
                self._model_bytes, sess_options=options, providers=providers
            )
        self._output_names = [output.name for output in self._session.get_outputs()]
        logger.info("ONNX model loaded with providers %s", self._session.get_providers())

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            raise Unavailable("the model is not loaded")
        results = self._session.run(self._output_names, dict(inputs))
        return dict(zip(self._output_names, results, strict=True))

    def unload(self) -> None:
        self._session = None
        self._model_bytes = None

    def metadata(self) -> Signature:
        return self._signature

    @property
    def providers(self) -> list[str]:
        """The execution providers in use, best first (empty before load)."""
        return [] if self._session is None else list(self._session.get_providers())
