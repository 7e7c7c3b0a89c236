"""The image-classifier recipe: digits to a registered version with gated variants."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from ferryman.errors import InvalidInput
from ferryman.export import EvaluationSet, GatePolicy, QuantizationMode, plan_variants
from ferryman.export.variants import INT8, export_variants
from ferryman.registry import Registry, RunStatus, VariantStatus
from ferryman.registry.records import ParamValue
from ferryman.serving.app import create_app
from ferryman.serving.replica import from_registry
from ferryman.training import RunEnvironment, RunOutcome, TrainingRequest, start_run
from ferryman.training.image import train_image_classifier
from ferryman.training.images import digits_data
from tests.serving.conftest import serving_in_thread, settings_with


def test_digits_reaches_90_percent_and_records_the_run(
    digits_registry: Registry, digits_outcome: RunOutcome
) -> None:
    run = digits_registry.runs.get(digits_outcome.run.id)
    assert run.status is RunStatus.SUCCEEDED
    assert digits_outcome.registration is not None
    version = digits_outcome.registration.version
    assert version.metrics["val_accuracy"] >= 0.90
    epochs_run = int(version.metrics["epochs_run"])
    assert [p.step for p in run.metrics["val_accuracy"]] == list(range(epochs_run))
    assert set(run.metrics) == {"train_loss", "val_loss", "val_accuracy"}
    assert [c.step for c in run.checkpoints] == list(range(epochs_run))
    assert version.parent_run == run.id
    assert version.params["epochs"] == 8
    assert version.data_fingerprint is not None
    assert version.data_fingerprint.startswith("sha256-")
    assert [s.describe() for s in version.signature.inputs] == ["pixels FP32 [-1, 1, 8, 8]"]
    assert [s.describe() for s in version.signature.outputs] == ["probabilities FP32 [-1, 10]"]


def test_a_digits_version_tells_clients_what_it_takes(
    digits_registry: Registry, digits_outcome: RunOutcome
) -> None:
    """8x8 pixels in 0..1 (light digits on a dark ground), in the reference data and in the
    replica's V2 model metadata, where a client can read them."""
    reference = digits_registry.get_reference("digits", "latest")
    assert reference is not None
    assert reference.input_ranges == {"pixels": (0.0, 1.0)}
    source = from_registry(digits_registry, "digits", "latest", None, 1)
    app = create_app(settings_with(), source.runtime, source.identity, source.reference)
    with serving_in_thread(app) as running:
        metadata = httpx.get(f"http://{running.address}/v2/models/digits").json()
    parameters = metadata["parameters"]
    assert json.loads(parameters["input_range"]) == {"pixels": [0.0, 1.0]}
    example = json.loads(parameters["input_example"])["pixels"]
    assert (example["datatype"], example["shape"]) == ("FP32", [1, 1, 8, 8])
    assert np.mean(example["data"]) < 0.5  # mostly dark ground, with light strokes


def test_the_fingerprint_depends_on_the_split_seed() -> None:
    assert digits_data(0, 0.2).fingerprint == digits_data(0, 0.2).fingerprint
    assert digits_data(0, 0.2).fingerprint != digits_data(1, 0.2).fingerprint


def test_reference_data_replays_on_every_servable_variant(
    digits_registry: Registry, digits_outcome: RunOutcome
) -> None:
    reference = digits_registry.get_reference("digits", "latest")
    assert reference is not None
    assert reference.labels == tuple(str(d) for d in range(10))
    assert sum(reference.prediction_summary.values()) == pytest.approx(1.0)
    assert set(reference.input_summaries) == {"mean_intensity", "contrast"}
    assert sum(reference.input_summaries["mean_intensity"].fractions) == pytest.approx(1.0)
    assert len(reference.golden) == 8
    servable = [
        v
        for v in digits_registry.list_variants("digits", "latest")
        if v.status is VariantStatus.PASSED
    ]
    assert "onnx-fp32" in {v.kind for v in servable}
    for variant in servable:  # every replica of a deployable variant must pass the replay
        session = ort.InferenceSession(digits_registry.store.read(variant.digest))
        for golden in reference.golden:
            pixels = golden.inputs["pixels"]
            feed = {"pixels": np.asarray(pixels.data, np.float32).reshape(pixels.shape)}
            expected = golden.outputs["probabilities"]
            got = session.run(["probabilities"], feed)[0]
            np.testing.assert_allclose(
                got.ravel(), np.asarray(expected.data, np.float64), rtol=0, atol=golden.atol
            )
    if {v.kind for v in servable} == {"onnx-fp32"}:
        assert all(golden.atol == 1e-4 for golden in reference.golden)


def test_fp32_variant_matches_the_source_and_int8_is_gated(
    digits_registry: Registry, digits_outcome: RunOutcome
) -> None:
    variants = {v.kind: v for v in digits_registry.list_variants("digits", "latest")}
    assert set(variants) == {"onnx-fp32", "onnx-int8"}
    fp32, int8 = variants["onnx-fp32"], variants["onnx-int8"]
    assert fp32.status is VariantStatus.PASSED
    assert fp32.gate["max_abs_diff"] <= 1e-4
    assert int8.gate["quantization"] == "static"
    for gate in (fp32.gate, int8.gate):
        assert gate["latency_ms_b1"] > 0
        assert gate["latency_ms_b32"] > 0
        assert gate["size_bytes"] > 0
    assert int8.size_bytes < fp32.size_bytes
    drop_pp = (fp32.gate["accuracy"] - int8.gate["accuracy"]) * 100
    assert (int8.status is VariantStatus.PASSED) == (drop_pp <= 1.0)


def test_constant_calibration_is_rejected_by_the_gate(
    digits_registry: Registry, digits_outcome: RunOutcome
) -> None:
    assert digits_outcome.registration is not None
    fp32_bytes = digits_registry.store.read(digits_outcome.registration.version.digest)
    data = digits_data(0, 0.2)
    evaluation = EvaluationSet("pixels", "probabilities", data.val_x, data.val_y)
    constant = np.full((64, 1, 8, 8), 0.5, dtype=np.float32)
    plan = plan_variants(
        fp32_bytes, evaluation, GatePolicy(), QuantizationMode.STATIC, calibration=constant
    )
    report = plan.report(INT8)
    assert report is not None
    assert not report.passed
    assert "pp below the baseline" in report.reason
    version = digits_registry.register("digits-broken", fp32_bytes, "ci")
    records = export_variants(digits_registry, "digits-broken", version.version, plan, "ci")
    assert {r.kind: r.status for r in records}[INT8] is VariantStatus.REJECTED


def test_resnet_option_trains_and_registers(registry: Registry) -> None:
    request = TrainingRequest("image-classifier", "digits-resnet", {"arch": "resnet", "epochs": 1})
    outcome = start_run(train_image_classifier, request, RunEnvironment(registry, "ci"))
    assert outcome.registration is not None
    assert outcome.registration.version.params["arch"] == "resnet"
    assert {v.kind for v in outcome.registration.variants} == {"onnx-fp32", "onnx-int8"}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_on_the_cpu_still_exports_fp32(registry: Registry, precision: str) -> None:
    params: dict[str, ParamValue] = {"epochs": 1, "width": 4, "precision": precision, "int8": "off"}
    request = TrainingRequest("digits", "digits", params)
    outcome = start_run(train_image_classifier, request, RunEnvironment(registry, "ci"))
    assert outcome.registration is not None
    (fp32,) = outcome.registration.variants
    assert fp32.status is VariantStatus.PASSED  # parity with the (fp32-weight) source model
    assert outcome.registration.version.signature.inputs[0].datatype == "FP32"


def _write_image_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("light", 210)):
        (root / label).mkdir(parents=True)
        for index in range(12):
            pixels = np.clip(rng.normal(level, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.png")


def test_image_folder_data(registry: Registry, tmp_path: Path) -> None:
    _write_image_folder(tmp_path / "images")
    request = TrainingRequest(
        "image-classifier",
        "shades",
        {"epochs": 2, "image_size": 16, "width": 4, "int8": "off"},
        data_path=tmp_path / "images",
    )
    outcome = start_run(train_image_classifier, request, RunEnvironment(registry, "ci"))
    assert outcome.registration is not None
    version = outcome.registration.version
    assert [s.describe() for s in version.signature.inputs] == ["image FP32 [-1, 3, 16, 16]"]
    assert [v.kind for v in outcome.registration.variants] == ["onnx-fp32"]
    assert registry.get_reference("shades", 1) is not None
    assert registry.get_reference("shades", 1).labels == ("dark", "light")  # type: ignore[union-attr]


def test_an_unknown_param_fails_the_run_with_the_fix(registry: Registry) -> None:
    request = TrainingRequest("digits", "digits", {"epoks": 3})
    with pytest.raises(InvalidInput, match=r"epoks.*its params: .*epochs"):
        start_run(train_image_classifier, request, RunEnvironment(registry, "ci"))
    (run,) = registry.runs.list()
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "epoks" in run.error
