"""For teams on KServe: an ``InferenceService`` of one endpoint, and the model repository.

``ferryman export kserve DIR --endpoint E`` writes a kustomization (``kubectl apply -k
DIR``) of a ServiceAccount and an ``InferenceService`` (``serving.kserve.io/v1beta1``) whose
predictor serves the endpoint's production variant in the Open Inference Protocol
(``protocolVersion: v2``, model format ``onnx``): on a default KServe install that is the
``kserve-tritonserver`` ClusterServingRuntime, pinned here to the Triton image tag KServe
v0.20.0 ships (``runtimeVersion``), never ``latest``.

Triton reads a model repository, ``ROOT/<model>/<version>/model.onnx``; Ferryman's artifact
store is content-addressed and is not one. So each served variant gets a repository of its
own, ``STORAGE/<variant>/<endpoint>/1/model.onnx`` (and a ``config.pbtxt`` naming the ONNX
Runtime backend; Triton fills in inputs and outputs from the graph), and the predictor's
``storageUri`` is ``STORAGE/<variant>``. Clients call ``/v2/models/<endpoint>/infer``, the
path Ferryman's own gateway answers.

A running rollout becomes KServe's canary: KServe's spec is always the newest revision, and
``canaryTrafficPercent`` is the share it gets while the previous ready revision keeps the
rest. So with a rollout in progress the predictor is the candidate, at the weight the
deployment gives it now. (That needs KServe's Serverless mode, where revisions exist, and
the previous revision applied before; docs/kubernetes.md says how.)

Rendering is a pure function of (:class:`KServeSpec`, the deployment, the rollout's
candidate): the command line reads the registry and copies the bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ferryman.control.exports import kubernetes_objects as k
from ferryman.control.exports.prometheus import to_yaml
from ferryman.errors import InvalidInput
from ferryman.registry import DeploymentSpec, VariantSpec

API_VERSION = "serving.kserve.io/v1beta1"
KSERVE_VERSION = "v0.20.0"
"""The KServe release the manifests are written and checked for."""
TRITON_VERSION = "23.05-py3"
"""Tag of ``nvcr.io/nvidia/tritonserver`` in KServe v0.20.0's ``config/runtimes``."""
TRITON_USER = 1000
"""Triton's non-root user (KServe's kserve-tritonserver runtime runs it so)."""
SERVICE_ACCOUNT = "ferryman-kserve"
S3_SECRET = "ferryman-kserve-s3"  # noqa: S105 - the Secret's name, not a secret
"""Keys ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, with KServe's ``serving.kserve.io/
s3-*`` annotations: the storage initializer reads them through the ServiceAccount."""
REPOSITORY = "model-repository"
"""DIR's folder holding each served variant's Triton model repository."""
STORAGE_URI = re.compile(r"(s3|gs|pvc|https|hdfs|webhdfs)://[^\s?#@]+")
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class KServeSpec:
    """What the InferenceService is rendered for."""

    storage_uri: str
    """Where the model repositories are (or will be uploaded): ``s3://BUCKET/PATH``,
    ``gs://…``, ``pvc://CLAIM/PATH``; each variant is at ``STORAGE/<variant>``."""
    namespace: str = "ferryman"
    runtime_version: str = TRITON_VERSION


@dataclass(frozen=True)
class KServeExport:
    files: dict[str, str]
    """Manifests by their path relative to DIR."""
    models: dict[str, VariantSpec]
    """Path of each ``model.onnx`` to write (relative to DIR) → the variant whose ONNX it is."""
    notes: tuple[str, ...]
    """What the InferenceService does not carry over from the deployment."""


def render(
    spec: KServeSpec, deployment: DeploymentSpec, candidate: VariantSpec | None = None
) -> KServeExport:
    """The kustomization of ``deployment``'s InferenceService; ``candidate`` is the variant a
    running rollout moves traffic to (None: no rollout)."""
    storage = storage_root(spec.storage_uri)
    if not spec.runtime_version or spec.runtime_version == "latest":
        raise InvalidInput("runtime version: name a Triton image tag, e.g. " + TRITON_VERSION)
    by_name = {variant.name: variant for variant in deployment.variants}
    canary = by_name.get(candidate.name) if candidate is not None else None
    served = canary or _production(deployment)
    notes = []
    if candidate is not None and canary is None:
        notes.append(f"the rollout's candidate {candidate.name} gets no traffic yet (the "
                     "control plane's next step gives it its first share); rendered without a "
                     "canary")  # fmt: skip
    previous = [v.name for v in deployment.variants if v.name != served.name and v.weight > 0]
    if canary is None and previous:
        notes.append(f"only {served.name} is rendered; KServe has no weighted split between "
                     f"more than two revisions: {', '.join(previous)} left out")  # fmt: skip
    for feature, present in (("header rules", bool(deployment.rules)),
                             ("sticky routing", bool(deployment.sticky_header)),
                             ("shadow traffic", bool(deployment.shadow))):  # fmt: skip
        if present:
            notes.append(f"{feature} of the endpoint have no InferenceService field; left out")
    service = _inference_service(spec, storage, deployment, served, canary)
    files = {
        "kustomization.yaml": _HEADER + to_yaml({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": spec.namespace,
            "resources": ["service-account.yaml", "inference-service.yaml"],
        }),
        "service-account.yaml": _HEADER + to_yaml(_service_account(storage)),
        "inference-service.yaml": _HEADER + to_yaml(service),
        config_path(deployment.endpoint, served): triton_config(deployment.endpoint),
    }  # fmt: skip
    models = {model_path(deployment.endpoint, served): served}
    return KServeExport(files, models, tuple(notes))


def storage_root(uri: str) -> str:
    """``uri`` without a trailing ``/``, if KServe's storage initializer can fetch from it."""
    root = uri.rstrip("/")
    if not STORAGE_URI.fullmatch(root) or "/../" in f"{root}/" or root.count("/") < 3:
        raise InvalidInput(
            "storage URI: KServe's storage initializer fetches the model from storage the "
            "cluster reaches, e.g. s3://BUCKET/PATH, gs://BUCKET/PATH or pvc://CLAIM/PATH "
            "(no credentials in it; they come from the Secret the ServiceAccount names)"
        )
    return root


def model_path(endpoint: str, variant: VariantSpec) -> str:
    """Where ``variant``'s ONNX goes under DIR: its own Triton repository, model ``endpoint``."""
    return f"{REPOSITORY}/{variant.name}/{endpoint}/1/{ONNX_FILE}"


def config_path(endpoint: str, variant: VariantSpec) -> str:
    return f"{REPOSITORY}/{variant.name}/{endpoint}/config.pbtxt"


def triton_config(endpoint: str) -> str:
    """``config.pbtxt`` beside each model: its name and backend; Triton completes the rest."""
    return f'name: "{endpoint}"\nbackend: "onnxruntime"\n'


def _production(deployment: DeploymentSpec) -> VariantSpec:
    """The variant with the largest share of traffic (the first of equals)."""
    return max(deployment.variants, key=lambda variant: variant.weight)


def _inference_service(
    spec: KServeSpec,
    storage: str,
    deployment: DeploymentSpec,
    served: VariantSpec,
    canary: VariantSpec | None,
) -> k.Object:
    endpoint = deployment.endpoint
    name = endpoint if DNS_1035.fullmatch(endpoint) else f"ferryman-{endpoint}"
    scaling = deployment.autoscaling
    if scaling is not None:
        replicas: dict[str, Any] = {
            "minReplicas": scaling.min_replicas,
            "maxReplicas": max(1, scaling.max_replicas),
            "scaleMetric": "concurrency",
            "scaleTarget": max(1, round(scaling.target_in_flight)),
        }
    else:
        replicas = {"minReplicas": served.replicas, "maxReplicas": max(1, served.replicas)}
    security = {
        "runAsNonRoot": True,
        "runAsUser": TRITON_USER,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    predictor: dict[str, Any] = {
        "serviceAccountName": SERVICE_ACCOUNT,
        **replicas,
        "securityContext": {"runAsNonRoot": True, "runAsUser": TRITON_USER,
                            "fsGroup": TRITON_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "model": {
            "modelFormat": {"name": "onnx"},
            "protocolVersion": "v2",
            "runtimeVersion": spec.runtime_version,
            "storageUri": f"{storage}/{served.name}",
            "resources": k.Resources("1", "2Gi", "2", "4Gi").document(),
            "securityContext": security,
        },
    }  # fmt: skip
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary.weight
    tags = {k.ENDPOINT_LABEL: endpoint, k.VARIANT_LABEL: served.name}
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            **k.metadata(name, "replica", **tags),
            "annotations": {"ferryman.dev/model": f"{served.model}:{served.version}"},
        },
        "spec": {"predictor": predictor},
    }


def _service_account(storage: str) -> k.Object:
    account = k.service_account(SERVICE_ACCOUNT, "replica")
    if storage.startswith("s3://"):
        account["secrets"] = [{"name": S3_SECRET}]
    return account


_HEADER = "# Written by `ferryman export kserve`.\n"
