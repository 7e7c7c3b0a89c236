"""scikit-learn to ONNX, and the one explicit path that may open a pickle."""

from __future__ import annotations

import pickle

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferryman.artifacts import inspect_artifact
from ferryman.errors import UnsafeArtifact
from ferryman.export.conversion import convert_sklearn, convert_trusted_pickle


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(200, 5)).astype(np.float32)
    return features, (features[:, 0] - features[:, 3] > 0).astype(np.int64)


@pytest.mark.parametrize(
    "estimator",
    [make_pipeline(StandardScaler(), LogisticRegression()), GradientBoostingClassifier()],
    ids=["logistic-pipeline", "gbm"],
)
def test_classifiers_convert_to_plain_tensors(estimator: object) -> None:
    features, labels = data()
    estimator.fit(features, labels)  # type: ignore[attr-defined]
    onnx_bytes = convert_sklearn(estimator, 5)
    signature = inspect_artifact(onnx_bytes).signature  # no zipmap: the gate accepts it
    assert [s.describe() for s in signature.outputs] == [
        "label INT64 [-1]",
        "probabilities FP32 [-1, 2]",
    ]
    label, probabilities = ort.InferenceSession(onnx_bytes).run(None, {"features": features})
    expected = estimator.predict_proba(features)  # type: ignore[attr-defined]
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(label, estimator.predict(features))  # type: ignore[attr-defined]


def test_a_trusted_pickle_becomes_onnx() -> None:
    features, labels = data()
    model = LogisticRegression().fit(features, labels)
    onnx_bytes = convert_trusted_pickle(pickle.dumps(model))
    assert inspect_artifact(onnx_bytes).signature.inputs[0].describe() == "features FP32 [-1, 5]"


def test_a_trusted_pickle_of_something_else_is_refused() -> None:
    with pytest.raises(UnsafeArtifact, match="holds a dict, not a fitted scikit-learn"):
        convert_trusted_pickle(pickle.dumps({"not": "a model"}))
    with pytest.raises(UnsafeArtifact, match="could not be unpickled"):
        convert_trusted_pickle(b"\x80\x04garbage")
