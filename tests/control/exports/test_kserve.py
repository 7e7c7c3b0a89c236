"""``ferryman export kserve``: the InferenceService validates against KServe v0.20.0's CRD
schema (``crd_schemas/inferenceservice-serving.kserve.io-v1beta1.json``: the v1beta1
``openAPIV3Schema`` of ``config/crd/full/serving.kserve.io_inferenceservices.yaml`` in
github.com/kserve/kserve at tag v0.20.0, commit 1fb781055dd1), its ServiceAccount and its
predictor's pod parts against Kubernetes' own schemas (kubernetes-validate, strictly), the
kustomization builds with kubectl's kustomize, and a running rollout is KServe's canary.

No Kubernetes API server or KServe controller can be had on these machines: what can be
checked offline is checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ferryman.control.exports.kserve import (
    KSERVE_VERSION,
    TRITON_VERSION,
    KServeSpec,
    render,
)
from ferryman.errors import InvalidInput
from ferryman.registry import DeploymentSpec
from ferryman.registry.deployments import Autoscaling, HeaderRuleSpec, VariantSpec
from tests.control.exports.manifests import (
    KUBERNETES_VERSIONS,
    check_golden,
    crd_validator,
    kustomize,
    needs_kubectl,
    write_files,
)

ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
BASELINE = VariantSpec(model="digits", version=3, weight=90)
CANDIDATE = VariantSpec(model="digits", version=4, kind="onnx-int8", weight=10)
DEPLOYMENT = DeploymentSpec(
    endpoint="digits",
    variants=(BASELINE, CANDIDATE),
    autoscaling=Autoscaling(min_replicas=2, max_replicas=6, target_in_flight=4.0),
)
STEADY = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=3,
                                                                 replicas=2),))  # fmt: skip
SPEC = KServeSpec(storage_uri="s3://models/ferryman/kserve/digits/")


def inference_service(files: dict[str, str], tmp_path: Path) -> list[dict[str, Any]]:
    return kustomize(write_files(tmp_path, files))


def test_kserve_release_and_schema_are_the_pinned_ones() -> None:
    assert KSERVE_VERSION == "v0.20.0"  # crd_schemas/README.md names the same release
    assert TRITON_VERSION == "23.05-py3"


@pytest.mark.parametrize(
    ("name", "deployment", "candidate"),
    [("kserve", STEADY, None), ("kserve-canary", DEPLOYMENT, CANDIDATE)],
)
def test_rendering_matches_the_golden_files(
    name: str, deployment: DeploymentSpec, candidate: VariantSpec | None
) -> None:
    """Reviewed in golden/kserve*/ (rewrite with FERRYMAN_UPDATE_GOLDEN=1)."""
    result = render(SPEC, deployment, candidate)
    assert render(SPEC, deployment, candidate) == result  # a pure function of its inputs
    check_golden(name, result.files)


@needs_kubectl
@pytest.mark.parametrize("candidate", [None, CANDIDATE])
def test_objects_validate_against_kserve_and_kubernetes_schemas(
    tmp_path: Path, candidate: VariantSpec | None
) -> None:
    items = inference_service(render(SPEC, DEPLOYMENT, candidate).files, tmp_path)
    assert sorted(o["kind"] for o in items) == ["InferenceService", "ServiceAccount"]
    assert {o["metadata"]["namespace"] for o in items} == {"ferryman"}
    for item in items:
        if (item["apiVersion"], item["kind"]) == ISVC:
            crd_validator(ISVC).validate(item)
            pod = _as_pod(item)
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(pod, version, strict=True)
        else:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(item, version, strict=True)


def test_schema_refuses_a_misplaced_field() -> None:
    """The CRD schema is strict where KServe's is: the check can fail."""
    files = render(SPEC, STEADY).files
    item = yaml.safe_load(files["inference-service.yaml"])
    item["spec"]["predictor"]["model"]["canaryTrafficPercent"] = 10  # belongs on the predictor
    with pytest.raises(Exception, match="canaryTrafficPercent"):
        crd_validator(ISVC).validate(item)


def test_without_a_rollout_the_production_variant_is_served() -> None:
    predictor = _predictor(render(SPEC, STEADY))
    assert "canaryTrafficPercent" not in predictor
    model = predictor["model"]
    assert model["storageUri"] == "s3://models/ferryman/kserve/digits/v3"
    assert model["modelFormat"] == {"name": "onnx"}
    assert model["protocolVersion"] == "v2"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 2)


def test_a_running_rollout_is_kserves_canary() -> None:
    """KServe's spec is the new revision and canaryTrafficPercent its share of traffic."""
    result = render(SPEC, DEPLOYMENT, CANDIDATE)
    predictor = _predictor(result)
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == "s3://models/ferryman/kserve/digits/v4-onnx-int8"
    assert list(result.models.items()) == [
        ("model-repository/v4-onnx-int8/digits/1/model.onnx", CANDIDATE)
    ]
    config = result.files["model-repository/v4-onnx-int8/digits/config.pbtxt"]
    assert config == 'name: "digits"\nbackend: "onnxruntime"\n'
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
    assert predictor["scaleMetric"] == "concurrency"
    assert result.notes == ()


def test_without_a_rollout_a_split_keeps_the_heaviest_variant_and_says_so() -> None:
    rule = HeaderRuleSpec(header="x-tier", equals="beta", variant="v4-onnx-int8")
    deployment = DEPLOYMENT.model_copy(update={"rules": (rule,)})
    result = render(SPEC, deployment)
    assert _predictor(result)["model"]["storageUri"].endswith("/v3")
    assert any("v4-onnx-int8 left out" in note for note in result.notes)
    assert any("header rules" in note for note in result.notes)


def test_every_container_is_pinned_limited_and_unprivileged() -> None:
    service = _service(render(SPEC, DEPLOYMENT, CANDIDATE))
    model = service["spec"]["predictor"]["model"]
    assert model["runtimeVersion"] == TRITON_VERSION  # the runtime's image tag, never latest
    assert set(model["resources"]["limits"]) == {"cpu", "memory"}
    assert set(model["resources"]["requests"]) == {"cpu", "memory"}
    security = model["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["privileged"] is False
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # Pod-level: what reaches the containers KServe and Knative inject without their own.
    pod = service["spec"]["predictor"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    with pytest.raises(InvalidInput, match="Triton image tag"):
        render(KServeSpec(storage_uri=SPEC.storage_uri, runtime_version="latest"), STEADY)


@pytest.mark.parametrize(
    "uri",
    ["/var/lib/ferryman/models", "file:///models", "s3://key:secret@bucket/m", "s3://bucket",
     "s3://bucket/../x", "ftp://host/m"],
)  # fmt: skip
def test_a_storage_uri_kserve_cannot_fetch_is_refused(uri: str) -> None:
    with pytest.raises(InvalidInput, match="storage initializer"):
        render(KServeSpec(storage_uri=uri), STEADY)


def test_s3_storage_names_the_credentials_secret_and_pvc_does_not() -> None:
    s3 = yaml.safe_load(render(SPEC, STEADY).files["service-account.yaml"])
    assert s3["secrets"] == [{"name": "ferryman-kserve-s3"}]
    assert s3["automountServiceAccountToken"] is False
    pvc = render(KServeSpec(storage_uri="pvc://models/ferryman"), STEADY)
    assert "secrets" not in yaml.safe_load(pvc.files["service-account.yaml"])
    assert _predictor(pvc)["model"]["storageUri"] == "pvc://models/ferryman/v3"


def _service(result: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(result.files["inference-service.yaml"])
    return loaded


def _predictor(result: Any) -> dict[str, Any]:
    predictor: dict[str, Any] = _service(result)["spec"]["predictor"]
    return predictor


def _as_pod(service: dict[str, Any]) -> dict[str, Any]:
    """The predictor's pod-level fields and its model container as the Pod KServe makes
    (KServe's own fields dropped; the runtime supplies the image)."""
    predictor = dict(service["spec"]["predictor"])
    model = dict(predictor.pop("model"))
    for field in ("modelFormat", "protocolVersion", "runtimeVersion", "storageUri"):
        model.pop(field)
    for field in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget",
                  "canaryTrafficPercent"):  # fmt: skip
        predictor.pop(field, None)
    container = {"name": "kserve-container", "image": f"tritonserver:{TRITON_VERSION}", **model}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"},
            "spec": {**predictor, "containers": [container]}}  # fmt: skip


def test_an_endpoint_name_kserve_would_refuse_gets_a_prefix() -> None:
    """InferenceService names are DNS-1035 labels (a letter first); endpoint names may not be."""
    steady = STEADY.model_copy(update={"endpoint": "3d-shapes"})
    service = _service(render(SPEC, steady))
    assert service["metadata"]["name"] == "ferryman-3d-shapes"
    assert service["metadata"]["labels"]["ferryman.dev/endpoint"] == "3d-shapes"
