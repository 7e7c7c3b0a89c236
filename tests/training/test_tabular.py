"""The tabular-classifier recipe end to end on generated CSV and Parquet files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import parquet

from ferryman.errors import InvalidInput
from ferryman.registry import Registry, RunStatus, VariantStatus
from ferryman.training import Registration, RunEnvironment, TrainingRequest, start_run
from ferryman.training.tabular import train_tabular_classifier

COLUMNS = ("amount", "age", "hour", "merchant")


def generated_rows(count: int = 400) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(count, len(COLUMNS)))
    score = features[:, 0] - 0.8 * features[:, 1] + 0.3 * features[:, 2]
    labels = ["fraud" if value > 0.4 else "ok" for value in score]
    return features, labels


def write_csv(path: Path, with_text_column: bool = False) -> Path:
    features, labels = generated_rows()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, "label", *(["city"] if with_text_column else [])])
        for row, label in zip(features, labels, strict=True):
            writer.writerow([*row, label, *(["paris"] if with_text_column else [])])
    return path


def train(registry: Registry, data: Path, model: str = "logistic") -> Registration:
    params = {"target": "label", "model": model}
    request = TrainingRequest("tabular-classifier", "fraud", params, data)
    outcome = start_run(train_tabular_classifier, request, RunEnvironment(registry, "ci"))
    assert outcome.registration is not None
    return outcome.registration


@pytest.mark.parametrize("model", ["logistic", "gbm"])
def test_csv_to_a_registered_version(registry: Registry, tmp_path: Path, model: str) -> None:
    registration = train(registry, write_csv(tmp_path / "fraud.csv"), model=model)
    version = registration.version
    assert version.metrics["val_accuracy"] >= 0.85
    assert version.params["model"] == model
    assert (version.data_fingerprint or "").startswith("sha256-")
    assert [s.describe() for s in version.signature.inputs] == ["features FP32 [-1, 4]"]
    assert [s.name for s in version.signature.outputs] == ["label", "probabilities"]
    (variant,) = registration.variants
    assert variant.kind == "onnx-fp32"
    assert variant.status is VariantStatus.PASSED
    assert variant.gate["max_abs_diff"] <= 1e-4
    reference = registry.get_reference("fraud", version.version)
    assert reference is not None
    assert reference.labels == ("fraud", "ok")
    assert set(reference.input_summaries) == set(COLUMNS)
    assert reference.golden[0].outputs["label"].datatype == "INT64"
    run = registry.runs.get(version.parent_run or "")
    assert run.status is RunStatus.SUCCEEDED
    assert set(run.metrics) == {"train_accuracy", "val_accuracy", "val_log_loss"}


def test_parquet_gives_the_same_model_as_csv(registry: Registry, tmp_path: Path) -> None:
    features, labels = generated_rows()
    columns = {name: features[:, index] for index, name in enumerate(COLUMNS)}
    table = pa.table({**columns, "label": labels})
    parquet.write_table(table, tmp_path / "fraud.parquet")
    from_parquet = train(registry, tmp_path / "fraud.parquet").version
    from_csv = train(registry, write_csv(tmp_path / "fraud.csv")).version
    assert from_parquet.metrics["val_accuracy"] == pytest.approx(from_csv.metrics["val_accuracy"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target": "nope"}, "target column 'nope' is not in fraud.csv"),
        ({"target": "label", "model": "svm"}, "param 'model'"),
    ],
)
def test_bad_params_fail_the_run_with_the_fix(
    registry: Registry, tmp_path: Path, params: dict[str, str], message: str
) -> None:
    data = write_csv(tmp_path / "fraud.csv")
    request = TrainingRequest("tabular-classifier", "fraud", params, data)
    with pytest.raises(InvalidInput, match=message):
        start_run(train_tabular_classifier, request, RunEnvironment(registry, "ci"))
    assert registry.runs.list()[0].status is RunStatus.FAILED


def test_text_features_are_refused_with_the_fix(registry: Registry, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "fraud.csv", with_text_column=True)
    with pytest.raises(InvalidInput, match="'city' holds string, not numbers; encode it"):
        train(registry, data)


def test_missing_labels_are_refused(registry: Registry, tmp_path: Path) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": ["a", None, "b", "a"]})
    parquet.write_table(table, tmp_path / "gaps.parquet")
    with pytest.raises(InvalidInput, match="1 missing values; drop those rows"):
        train(registry, tmp_path / "gaps.parquet")


def test_a_table_is_required(registry: Registry) -> None:
    request = TrainingRequest("tabular-classifier", "fraud", {"target": "label"})
    with pytest.raises(InvalidInput, match="give --data"):
        start_run(train_tabular_classifier, request, RunEnvironment(registry, "ci"))
