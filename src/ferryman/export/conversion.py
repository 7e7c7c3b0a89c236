"""scikit-learn to ONNX through skl2onnx, and the one place a pickle may be opened.

:func:`convert_sklearn` converts a fitted classifier (or a pipeline ending in one) with a
float tensor input named ``features`` and two plain tensor outputs: ``label`` and
``probabilities`` (zipmap off, so no sequence-of-maps output). :func:`convert_trusted_pickle`
unpickles a file the user has explicitly trusted (``ferryman register model.pkl --trust``);
unpickling runs code from the file, which is why nothing else in Ferryman ever does it.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import joblib
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

from ferryman.errors import InvalidInput, UnsafeArtifact

logger = logging.getLogger(__name__)

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
SCORE_OUTPUT = "probabilities"
OPSET = 17
MAX_PICKLE_BYTES = 2 * 1024**3


def convert_sklearn(model: Any, n_features: int) -> bytes:
    """The ONNX bytes of a fitted scikit-learn classifier taking ``n_features`` floats.

    skl2onnx names a classifier's outputs ``label`` and ``probabilities``.
    """
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else {}
    onnx_model = to_onnx(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options=options,
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    data: bytes = onnx_model.SerializeToString()
    return data


def convert_trusted_file(path: Path) -> bytes:
    """:func:`convert_trusted_pickle` of the file at ``path`` (``register --trust``)."""
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file; give the path of a pickled model")
    if path.stat().st_size > MAX_PICKLE_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_PICKLE_BYTES} bytes; refused")
    return convert_trusted_pickle(path.read_bytes())


def convert_trusted_pickle(data: bytes) -> bytes:
    """Unpickle a scikit-learn model the caller explicitly trusts and return its ONNX form.

    Only call this behind an explicit trust decision: loading a pickle runs whatever code
    the file names. The pickle itself is never stored.
    """
    logger.warning("unpickling a trusted file (%d bytes) to convert it to ONNX", len(data))
    try:
        model = joblib.load(io.BytesIO(data))  # explicit --trust path only
    except Exception as exc:  # whatever the file does while unpickling
        raise UnsafeArtifact(f"the trusted file could not be unpickled: {exc}") from None
    n_features = getattr(model, "n_features_in_", None)
    if not hasattr(model, "predict") or not isinstance(n_features, int):
        raise UnsafeArtifact(
            f"the trusted file holds a {type(model).__name__}, not a fitted scikit-learn "
            "estimator; pickle a fitted estimator or pipeline (with n_features_in_), or "
            "export the model to ONNX yourself"
        )
    return convert_sklearn(model, n_features)
