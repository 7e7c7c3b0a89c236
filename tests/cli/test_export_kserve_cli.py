"""``ferryman export kserve DIR --endpoint E``: the registry's deployment and running rollout
become an InferenceService, and the served ONNX lands in a Triton model repository, in DIR
or (with artifacts on S3) beside the artifacts in the bucket (moto's S3 server)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferryman.config import Settings
from ferryman.registry import DeploymentSpec, Registry, VariantSpec
from tests.control.exports.manifests import KUBECTL, kustomize
from tests.s3server import S3Server

Run = Callable[..., tuple[int, str, str]]


def registered(run: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes], *data: str) -> bytes:
    """digits v1 and v2 registered, v1 deployed at ``shop``; returns v2's bytes."""
    for version, seed in ((1, 0), (2, 1)):  # distinct files
        path = tmp_path / f"m{version}.onnx"
        path.write_bytes(onnx_bytes(seed_value=float(seed)))
        code, _, err = run(*data, "register", str(path), "--model", "digits")
        assert code == 0, err
    code, _, err = run(*data, "deploy", "digits:1", "--endpoint", "shop")
    assert code == 0, err
    return (tmp_path / "m2.onnx").read_bytes()


def test_a_running_rollout_becomes_the_canary_and_its_model_is_written(
    run: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    candidate_bytes = registered(run, tmp_path, onnx_bytes, *data)
    baseline, candidate = (VariantSpec(model="digits", version=1, weight=75),
                           VariantSpec(model="digits", version=2, weight=25))  # fmt: skip
    registry = Registry.open(Settings(data_dir=tmp_path / "data"))
    try:
        registry.deployments.put(DeploymentSpec(endpoint="shop", variants=(baseline, candidate)),
                                 "test")  # fmt: skip
        registry.rollouts.create("shop", (baseline, candidate), {"steps": [25, 100]}, "test")
    finally:
        registry.close()
    out = tmp_path / "kserve"
    code, stdout, err = run(*data, "export", "kserve", str(out), "--endpoint", "shop",
                            "--storage-uri", "gs://ml-models/shop")  # fmt: skip
    assert code == 0, err
    assert f"Upload {out / 'model-repository'}/ to gs://ml-models/shop" in stdout
    written = out / "model-repository" / "v2" / "shop" / "1" / "model.onnx"
    assert hashlib.sha256(written.read_bytes()).digest() == hashlib.sha256(candidate_bytes).digest()
    service = yaml.safe_load((out / "inference-service.yaml").read_text())
    predictor = service["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    assert predictor["model"]["storageUri"] == "gs://ml-models/shop/v2"
    if KUBECTL is not None:
        kinds = sorted(o["kind"] for o in kustomize(out))
        assert kinds == ["InferenceService", "ServiceAccount"]


def test_local_artifacts_need_a_storage_uri_kserve_can_reach(
    run: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    registered(run, tmp_path, onnx_bytes, *data)
    out = tmp_path / "kserve"
    code, _, err = run(*data, "export", "kserve", str(out), "--endpoint", "shop")
    assert code == 1
    assert "KServe cannot reach" in err
    assert "--storage-uri" in err
    assert not out.exists()


def test_an_endpoint_without_a_deployment_is_refused_with_the_fix(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "kserve"
    code, _, err = run("--data-dir", str(tmp_path / "data"), "export", "kserve", str(out),
                       "--endpoint", "nowhere", "--storage-uri", "s3://b/m")  # fmt: skip
    assert code == 1
    assert "endpoint 'nowhere' has no deployment" in err
    assert "ferryman deploy MODEL:VERSION --endpoint nowhere" in " ".join(err.split())
    assert not out.exists()


def test_with_artifacts_on_s3_the_repository_is_copied_into_the_bucket(
    run: Run,
    tmp_path: Path,
    onnx_bytes: Callable[..., bytes],
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.bucket()
    monkeypatch.setenv("FERRYMAN_ARTIFACTS__URL", f"s3://{bucket}/fleet")
    monkeypatch.setenv("FERRYMAN_ARTIFACTS__ENDPOINT_URL", s3_server.endpoint_url)
    data = ("--data-dir", str(tmp_path / "data"))
    registered(run, tmp_path, onnx_bytes, *data)
    out = tmp_path / "kserve"
    code, stdout, err = run(*data, "export", "kserve", str(out), "--endpoint", "shop")
    assert code == 0, err
    root = f"s3://{bucket}/fleet/kserve/shop"
    assert f"{root}/" in " ".join(stdout.split())
    service = yaml.safe_load((out / "inference-service.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["storageUri"] == f"{root}/v1"
    client: Any = s3_server.client()
    key = "fleet/kserve/shop/v1/shop/1/model.onnx"
    copied = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert copied == (tmp_path / "m1.onnx").read_bytes()
    config = client.get_object(Bucket=bucket, Key="fleet/kserve/shop/v1/shop/config.pbtxt")
    assert config["Body"].read() == b'name: "shop"\nbackend: "onnxruntime"\n'
