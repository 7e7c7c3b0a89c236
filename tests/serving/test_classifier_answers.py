"""``/endpoints/<e>/predict`` (a replica's ``/predict``) answers the right classes for every
kind of model the registry takes, and the payload log records exactly what was answered.

Real replicas over HTTP: scikit-learn classifiers registered the README's ways (a skl2onnx
file, a ``--trust`` pickle) and served by ``ferryman serve`` as a process, and a digits-like
CNN (softmax probabilities, or bare logits) served by uvicorn on a loopback socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import onnxruntime
import pytest
import torch
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferryman.cli.main import main
from ferryman.engines.onnx import OnnxEngine
from ferryman.export.conversion import convert_sklearn
from ferryman.export.torch_onnx import export_torch
from ferryman.reference import ReferenceData
from ferryman.serving.app import create_app
from ferryman.serving.metrics import ReplicaIdentity
from ferryman.serving.replica import from_file
from ferryman.training.networks import WithSoftmax, build_network
from tests.serving.conftest import serving_in_thread, settings_with
from tests.slowloris import server_process
from tests.support import free_port


def ferryman(*args: str) -> int:
    """``ferryman ARGS`` in-process, as a user types it; its exit code."""
    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def iris_rows() -> tuple[np.ndarray, np.ndarray]:
    """Iris features, and the class index of each row."""
    bunch = load_iris()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def fitted(targets: np.ndarray) -> Any:
    features, _ = iris_rows()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, targets)


@contextmanager
def served(data_dir: Path, target: str) -> Iterator[str]:
    """``ferryman serve TARGET`` as a process; yields its base URL."""
    port = free_port()
    command = ["--data-dir", str(data_dir), "serve", target, "--port", str(port)]
    with server_process(command, ("127.0.0.1", port), "/v2/health/ready"):
        yield f"http://127.0.0.1:{port}"


def check_answers(url: str, model: Any, rows: np.ndarray) -> None:
    """/predict gives the model's own classes and probabilities; the log keeps the same."""
    answer = httpx.post(f"{url}/predict", json={"rows": rows.tolist()}, timeout=10)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    expected = [str(label) for label in model.predict(rows)]
    assert [p["label"] for p in predictions] == expected
    assert len(set(expected)) == 3  # the rows span every class: no constant answer passes
    probabilities = model.predict_proba(rows)
    classes = [str(c) for c in model.classes_]
    for prediction, row in zip(predictions, probabilities, strict=True):
        assert list(prediction["probabilities"]) == classes
        assert list(prediction["probabilities"].values()) == pytest.approx(row, abs=1e-4)
        assert prediction["probability"] == pytest.approx(row.max(), abs=1e-4)
    logged = httpx.get(f"{url}/ferryman/v1/payloads", params={"after": 0}).json()["records"]
    request_id = answer.headers["ferryman-request-id"]
    (record,) = [r for r in logged if r["request_id"] == request_id]
    assert record["predictions"] == [p["label"] for p in predictions]


def test_a_skl2onnx_iris_file_answers_its_classes(tmp_path: Path) -> None:
    features, targets = iris_rows()
    model = fitted(targets)
    path = tmp_path / "iris.onnx"
    path.write_bytes(convert_sklearn(model, features.shape[1]))
    assert ferryman("--data-dir", str(tmp_path / "d"), "register", str(path), "-m", "iris") == 0
    with served(tmp_path / "d", "iris:1") as url:
        check_answers(url, model, features[::10])


def test_a_trusted_pickle_with_named_classes_answers_them(tmp_path: Path) -> None:
    """The README's ``register model.pkl --trust``; string classes come out of a STRING label."""
    features, targets = iris_rows()
    model = fitted(np.asarray(load_iris().target_names)[targets])
    joblib.dump(model, tmp_path / "model.pkl")
    data_dir, pickle = str(tmp_path / "d"), str(tmp_path / "model.pkl")
    assert ferryman("--data-dir", data_dir, "register", pickle, "--model", "iris", "--trust") == 0
    with served(tmp_path / "d", "iris@latest") as url:
        check_answers(url, model, features[::10])


def test_classes_that_are_not_column_numbers_map_to_their_columns(tmp_path: Path) -> None:
    """Classes 3, 5 and 9: the label output says 9 for column 2, and the answer says 9."""
    features, targets = iris_rows()
    model = fitted(np.array([3, 5, 9])[targets])
    path = tmp_path / "iris.onnx"
    path.write_bytes(convert_sklearn(model, features.shape[1]))
    source = from_file(path, "iris", 1)
    app = create_app(settings_with(), source.runtime, source.identity, source.reference)
    with serving_in_thread(app) as running:
        check_answers(f"http://{running.address}", model, features[::10])


def test_a_zipmap_classifier_is_refused_at_registration_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, targets = iris_rows()
    onnx_model = to_onnx(
        fitted(targets), initial_types=[("features", FloatTensorType([None, 4]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )  # fmt: skip
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    assert ferryman("--data-dir", str(tmp_path / "d"), "register", str(path), "-m", "iris") == 1
    assert "'zipmap': False" in capsys.readouterr().err


@pytest.mark.parametrize("with_softmax", [True, False], ids=["probabilities", "logits"])
def test_a_digits_cnn_answers_the_argmax_of_its_scores(with_softmax: bool) -> None:
    torch.manual_seed(0)
    network = build_network("cnn", 1, 10, 8)
    module = WithSoftmax(network) if with_softmax else network
    name = "probabilities" if with_softmax else "logits"
    onnx_bytes = export_torch(module, torch.zeros(1, 1, 8, 8), "pixels", name)
    images = (load_digits().images[:40] / 16.0).astype(np.float32)[:, None]
    (scores,) = onnxruntime.InferenceSession(onnx_bytes).run(None, {"pixels": images})
    probabilities = scores if with_softmax else torch.softmax(torch.tensor(scores), 1).numpy()
    labels = tuple(str(i) for i in range(10))
    app = create_app(
        settings_with(), OnnxEngine(onnx_bytes), ReplicaIdentity("digits", "1", "onnx-fp32"),
        ReferenceData(labels=labels),
    )  # fmt: skip
    with serving_in_thread(app) as running:
        answer = httpx.post(
            f"http://{running.address}/predict", json={"rows": images.tolist()}, timeout=10
        )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["label"] for p in predictions] == [str(i) for i in scores.argmax(axis=1)]
    for prediction, row in zip(predictions, probabilities, strict=True):
        assert list(prediction["probabilities"].values()) == pytest.approx(row, abs=1e-5)
