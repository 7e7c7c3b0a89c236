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
