"""Offline checks of rendered manifests, shared by the Kubernetes and KServe export tests:
kubectl's kustomize, and the vendored CRD schemas of ``crd_schemas/`` (their sources are in
``crd_schemas/README.md``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from ferryman.config import Settings, load_settings
from ferryman.control.exports.kubernetes import ClusterSpec, render
from ferryman.control.monitor.alerts import DEFAULT_RULES
from ferryman.registry import DeploymentSpec
from ferryman.registry.deployments import Autoscaling, VariantSpec

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="KUBECTL MISSING: the kustomizations are NOT built"
)
SCHEMAS = Path(__file__).parent / "crd_schemas"
GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("FERRYMAN_UPDATE_GOLDEN") == "1"
"""Set to rewrite the golden files from the renderer (then review the diff)."""
# The oldest Kubernetes the manifests promise, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# Custom resources: (apiVersion, kind) -> the CRD's openAPIV3Schema, vendored from (the
# CRD file's path in each repository is in crd_schemas/README.md):
#   RayCluster                     github.com/ray-project/kuberay                      v1.7.0
#   ServiceMonitor, PrometheusRule github.com/prometheus-operator/prometheus-operator  v0.93.0
#   HTTPRoute                      github.com/kubernetes-sigs/gateway-api              v1.6.1
#   InferenceService               github.com/kserve/kserve                            v0.20.0
CRD_SCHEMAS = {
    ("ray.io/v1", "RayCluster"): "raycluster-ray.io-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway.networking.k8s.io-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): (
        "inferenceservice-serving.kserve.io-v1beta1.json"
    ),
}
CRD_RELEASES = {"RayCluster": "v1.7.0", "ServiceMonitor": "v0.93.0", "PrometheusRule": "v0.93.0",
                "HTTPRoute": "v1.6.1", "InferenceService": "v0.20.0"}  # fmt: skip


def write_files(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def kustomize(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    built = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    return [item for item in yaml.safe_load_all(built.stdout) if item]


def crd_validator(key: tuple[str, str]) -> jsonschema.Draft7Validator:
    """A validator of the CRD's OpenAPI v3 schema, the JSON Schema subset draft 7 reads.

    The schema itself is not checked against the metaschema: some CRDs' patterns are Go
    (RE2) expressions Python's ``re`` refuses, used only on fields Ferryman never sets.
    """
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
    return jsonschema.Draft7Validator(_closed(schema))


def check_golden(name: str, files: dict[str, str]) -> None:
    """``files`` are byte for byte the golden folder ``name`` (every file, no other)."""
    folder = GOLDEN / name
    if UPDATE_GOLDEN:
        shutil.rmtree(folder, ignore_errors=True)
        write_files(folder, files)
    golden = {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
              if p.is_file()}  # fmt: skip
    assert sorted(files) == sorted(golden), f"files differ from {folder}"
    for path, text in files.items():
        assert text == golden[path], (
            f"{path} differs from {folder / path}; if the change is meant, rerun with "
            "FERRYMAN_UPDATE_GOLDEN=1 and review the diff"
        )


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD does not preserve them."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if ("properties" in closed and "additionalProperties" not in closed
            and not closed.get("x-kubernetes-preserve-unknown-fields")):  # fmt: skip
        closed["additionalProperties"] = False
    return closed


# -- the Kubernetes export as kubectl builds it (shared by its tests and the conftest) -------

DEPLOYMENTS = (
    DeploymentSpec(
        endpoint="digits",
        variants=(
            VariantSpec(model="digits", version=3, weight=90),
            VariantSpec(model="digits", version=4, kind="onnx-int8", weight=10),
        ),
        autoscaling=Autoscaling(min_replicas=2, max_replicas=6),
        max_batch_size=16,
    ),
    DeploymentSpec(endpoint="iris", variants=(VariantSpec(model="iris", version=1, replicas=3),)),
)
OVERLAYS = ("deployments", "kuberay")
Built = dict[str, list[dict[str, Any]]]
"""Each overlay's objects, as ``kubectl kustomize`` builds them."""
POD_IP = "10.1.2.3"
"""What the kubelet gives ``$(POD_IP)`` in these tests."""
SECRET_VALUES = {"database-url": "postgresql+psycopg://db/ferryman", "api-token": "api-secret",
                 "replica-token": "fleet-secret"}  # fmt: skip
"""Stand-ins for the keys of the Secret ``ferryman-secrets``."""


def write(tmp_path: Path, spec: ClusterSpec, deployments: tuple[DeploymentSpec, ...]) -> Path:
    return write_files(tmp_path, render(spec, deployments, DEFAULT_RULES))


def pod_templates(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates (``metadata``, ``spec``) of a Deployment or a RayCluster."""
    if item["kind"] == "Deployment":
        return [item["spec"]["template"]]
    if item["kind"] == "RayCluster":
        groups = [item["spec"]["headGroupSpec"], *item["spec"]["workerGroupSpecs"]]
        return [group["template"] for group in groups]
    return []


def containers(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for template in pod_templates(item) for c in template["spec"]["containers"]]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (``matchLabels``/``matchExpressions``, or a Service's plain map)
    matches ``labels``."""
    plain = selector.get("matchLabels", {}) if _is_label_selector(selector) else selector
    if any(labels.get(key) != value for key, value in plain.items()):
        return False
    for expression in selector.get("matchExpressions", []) if _is_label_selector(selector) else []:
        key, operator = expression["key"], expression["operator"]
        if operator == "Exists" and key not in labels:
            return False
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator not in ("Exists", "In"):
            raise AssertionError(f"selector operator {operator} not read by these tests")
    return True


def _is_label_selector(selector: dict[str, Any]) -> bool:
    return bool(set(selector) & {"matchLabels", "matchExpressions"})


def environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables as the kubelet would set them: Secrets' keys from
    :data:`SECRET_VALUES`, the pod's IP as :data:`POD_IP`, ``$(VAR)`` of earlier ones."""
    values: dict[str, str] = {}
    for variable in container.get("env", []):
        source = variable.get("valueFrom")
        if source is None:
            value = variable["value"]
            for name, earlier in values.items():
                value = value.replace(f"$({name})", earlier)
        elif "secretKeyRef" in source:
            assert source["secretKeyRef"]["name"] == "ferryman-secrets"
            value = SECRET_VALUES[source["secretKeyRef"]["key"]]
        else:
            assert source["fieldRef"]["fieldPath"] == "status.podIP"
            value = POD_IP
        values[variable["name"]] = value
    return values


def load_settings_from(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> Settings:
    """The container's Ferryman settings, read by the real loader from its environment (no
    other FERRYMAN_ variable, no ferryman.toml); every FERRYMAN_ name must be a setting,
    since the loader would ignore an unknown top-level one."""
    env = environment(container)
    for name in env:
        if name.startswith("FERRYMAN_"):
            model: Any = Settings
            for part in name.removeprefix("FERRYMAN_").lower().split("__"):
                assert part in model.model_fields, f"{name}: no setting {part!r}"
                model = model.model_fields[part].annotation
    with monkeypatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("FERRYMAN_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(workdir)
        return load_settings()
