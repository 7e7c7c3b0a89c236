"""For Kubernetes: a kustomize base and overlays that ``kubectl apply -k`` applies.

``ferryman export kubernetes DIR`` writes::

    base/                    control plane, NetworkPolicy, ServiceMonitors, rules
    components/ingress/      the gateway behind an Ingress (the overlays' default) ...
    components/httproute/    ... or a Gateway API HTTPRoute (``--route httproute``)
    overlays/deployments/    the gateway (Deployment, Service, HPA, PodDisruptionBudget) and
                             replicas as one Deployment + Service (+ HPA) per variant
    overlays/kuberay/        replicas and gateways as Ray actors on a KubeRay RayCluster:
                             the control plane on the Ray runtime, the gateway Service on
                             the Ray workers (where the runtime's gateways listen)

Rendering is a pure function of :class:`ClusterSpec`, the endpoints' deployments and the
alert rules: the same inputs give the same bytes. The registry is PostgreSQL (the URL in
the Secret ``ferryman-secrets``, with the API token and the replicas' token, which the
gateway shows them); the data dir is a ReadWriteMany claim the control plane writes and
replicas read (artifacts), and optional S3 credentials come from the Secret
``ferryman-s3``. The plain flavour's gateway reads its route table from a ConfigMap; the
KubeRay flavour's gateways read it from the control plane, which runs the Ray runtime.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ferryman.control.exports import kuberay
from ferryman.control.exports import kubernetes_objects as k
from ferryman.control.exports.kubernetes_replicas import (
    REPLICA_PORT,
    replica_objects,
    route_table,
)
from ferryman.control.exports.prometheus import rule_groups, to_yaml
from ferryman.errors import InvalidInput
from ferryman.registry import AlertRule, DeploymentSpec

CONTROL = "control-plane"
GATEWAY = "gateway"
REPLICA = "replica"
CONTROL_PORT = ("http", 7070)
GATEWAY_PORT = ("http", 8000)
CONTROL_NAME = "ferryman-control"
GATEWAY_NAME = "ferryman-gateway"
ROUTES_DIR = "/etc/ferryman/routes"
HOST_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
Route = Literal["ingress", "httproute"]
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
"""Where a cluster's pod addresses are unless told (RFC 1918)."""


@dataclass(frozen=True)
class ClusterSpec:
    """What the manifests are rendered for; everything else is a kustomize patch away."""

    image: str
    """Image reference with a tag or digest, e.g. ``registry.example.com/ferryman:0.1.0``."""
    namespace: str = "ferryman"
    host: str = "ferryman.example.com"
    """Host name the Ingress or HTTPRoute answers for."""
    route: Route = "ingress"
    prometheus_namespace: str = "monitoring"
    """Namespace of Prometheus: may scrape replicas past their NetworkPolicy."""
    gateway_min_replicas: int = 2
    gateway_max_replicas: int = 10
    pod_networks: tuple[str, ...] = PRIVATE_NETWORKS
    """The cluster's pod networks (CIDR): in the KubeRay flavour, replicas listen on Ray
    pods' addresses, which the gateways accept as backends inside these networks."""


def render(
    spec: ClusterSpec, deployments: Sequence[DeploymentSpec], rules: Sequence[AlertRule]
) -> dict[str, str]:
    """Every file of the kustomization, by its path relative to DIR."""
    image_name, image_tag = split_image(spec.image)
    if not HOST_NAME.fullmatch(spec.host):
        raise InvalidInput(
            f"host {spec.host!r} is not a DNS name; use lowercase labels of letters, digits "
            "and '-' joined by dots, e.g. ml.example.com"
        )
    for network in spec.pod_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise InvalidInput(f"pod network {network!r} is not a network; e.g. "
                               "10.244.0.0/16 (your cluster's pod CIDR)") from None  # fmt: skip
    # Each kustomization sets the image of its own resources (transformers do not reach up).
    images = [
        {"name": k.IMAGE, "newName": image_name, **image_tag},
        {"name": k.RAY_IMAGE, "newName": f"{image_name}-ray", **image_tag},
    ]
    files = {
        "base/kustomization.yaml": _kustomization(
            resources=["namespace.yaml", "control-plane.yaml", "network-policy.yaml",
                       "monitoring.yaml"],
            namespace=spec.namespace,
            images=images,
        ),
        "base/namespace.yaml": _documents([_namespace(spec.namespace)]),
        "base/control-plane.yaml": _documents(_control_plane(spec)),
        "base/network-policy.yaml": _documents(_network_policies(spec)),
        "base/monitoring.yaml": _documents(_monitoring(rules)),
        "components/ingress/kustomization.yaml": _component(["ingress.yaml"]),
        "components/ingress/ingress.yaml": _documents([_ingress(spec)]),
        "components/httproute/kustomization.yaml": _component(["httproute.yaml"]),
        "components/httproute/httproute.yaml": _documents([_httproute(spec)]),
        "overlays/deployments/kustomization.yaml": _kustomization(
            resources=["../../base", "gateway.yaml", "replicas.yaml"],
            namespace=spec.namespace,
            components=[f"../../components/{spec.route}"],
            images=images,
        ),
        "overlays/deployments/gateway.yaml": _documents(_gateway(spec, deployments)),
        "overlays/deployments/replicas.yaml": _documents(
            [_routes_config(spec, deployments), *replica_objects(deployments, spec.namespace)]
        ),
        "overlays/kuberay/kustomization.yaml": _kustomization(
            resources=["../../base", "gateway.yaml", "raycluster.yaml"],
            namespace=spec.namespace,
            components=[f"../../components/{spec.route}"],
            images=images,
            patches=["control-plane-ray.yaml"],
        ),
        "overlays/kuberay/raycluster.yaml": _documents(
            kuberay.ray_cluster(deployments, GATEWAY_PORT[1])
        ),
        "overlays/kuberay/control-plane-ray.yaml": _documents([kuberay.control_plane_patch(
            spec.namespace, (CONTROL_NAME, CONTROL_PORT[1]),
            (GATEWAY_PORT[1], _gateway_hosts(spec)), spec.pod_networks,
        )]),
        "overlays/kuberay/gateway.yaml": _documents(
            [kuberay.gateway_service(GATEWAY_NAME, GATEWAY_PORT)]
        ),
    }  # fmt: skip
    return files


def split_image(reference: str) -> tuple[str, dict[str, str]]:
    """``repo:tag`` or ``repo@sha256:…`` → (repo, kustomize's newTag or digest); no ``latest``."""
    if "@" in reference:
        name, digest = reference.split("@", 1)
        if not digest.startswith("sha256:") or not name:
            raise InvalidInput(f"image {reference!r}: a digest is name@sha256:HEX")
        return name, {"digest": digest}
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag or not tag:
        raise InvalidInput(
            f"image {reference!r} has no tag; name one, e.g. {reference}:0.1.0, or a digest"
        )
    if tag == "latest":
        raise InvalidInput(f"image {reference!r}: 'latest' moves under running pods; "
                           "name a version tag (e.g. :0.1.0) or a digest")  # fmt: skip
    return name, {"newTag": tag}


def _control_plane(spec: ClusterSpec) -> list[k.Object]:
    name = CONTROL_NAME
    # The Host allow-list (DNS-rebinding guard) takes the Service's names and the pod's own
    # IP, which Prometheus sends when it scrapes /metrics (Kubernetes expands $(POD_IP)).
    hosts = k.service_hosts(name, spec.namespace)
    health = k.Probe("/healthz", host="localhost")
    probes = k.Probes(startup=k.Probe("/healthz", 2, 60, "localhost"), readiness=health,
                      liveness=health)  # fmt: skip
    container = k.container(
        "control-plane",
        ["up", "--host", "0.0.0.0", "--port", str(CONTROL_PORT[1])],  # noqa: S104 - in a pod
        CONTROL_PORT,
        k.Resources("250m", "512Mi", "1", "1Gi"),
        probes,
        env=(
            k.POD_IP,
            k.env("FERRYMAN_DATA_DIR", k.DATA_DIR),
            k.secret_env("FERRYMAN_DATABASE_URL", "database-url"),
            k.env("FERRYMAN_CONTROL__ALLOWED_HOSTS", json.dumps(hosts)),
            k.env("FERRYMAN_LOG_FORMAT", "json"),
            k.PLAIN_HTTP,
        ),
        mounts=(
            {"name": "data", "mountPath": k.DATA_DIR},
            {"name": "token", "mountPath": f"{k.DATA_DIR}/control-token",
             "subPath": "control-token", "readOnly": True},
        ),
    )  # fmt: skip
    container["envFrom"] = k.s3_env_from()
    volumes = (
        {"name": "data", "persistentVolumeClaim": {"claimName": k.DATA_CLAIM}},
        {"name": "token", "secret": {"secretName": k.SECRET, "defaultMode": 0o400,
                                     "items": [{"key": "api-token", "path": "control-token"}]}},
    )  # fmt: skip
    deployment = k.deployment(name, CONTROL, 1, k.pod_spec(name, [container], volumes))
    # One loop owns the registry's desired state: never two during an update.
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": k.metadata(k.DATA_CLAIM, CONTROL),
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "20Gi"}}},
    }
    return [
        k.service_account(name, CONTROL),
        claim,
        deployment,
        k.service(name, CONTROL, CONTROL_PORT),
    ]


def _gateway(spec: ClusterSpec, deployments: Sequence[DeploymentSpec]) -> list[k.Object]:
    name = GATEWAY_NAME
    # The kubelet's probes name the pod's IP as Host; they say localhost, which is always
    # allowed. Callers through the Ingress or HTTPRoute name spec.host.
    ready = k.Probe("/v2/health/ready", 5, host="localhost")
    live = k.Probe("/-/healthz", host="localhost")
    probes = k.Probes(k.Probe("/-/healthz", 2, 30, "localhost"), ready, live)
    hosts = sorted({host for host in _backend_hosts(spec.namespace, deployments)})
    allowed = [*_gateway_hosts(spec), "$(POD_IP)"]
    container = k.container(
        "gateway",
        # In a pod: the Service and the Ingress reach it on the pod's address.
        ["gateway", "--host", "0.0.0.0", "--port", str(GATEWAY_PORT[1]),  # noqa: S104
         "--routes-file", f"{ROUTES_DIR}/routes.json"],
        GATEWAY_PORT,
        k.Resources("250m", "256Mi", "1", "512Mi"),
        probes,
        env=(
            k.POD_IP,
            # The gateway has no auth of its own: the Ingress in front is the edge.
            k.env("FERRYMAN_GATEWAY__ALLOW_INSECURE_BIND", "true"),
            k.env("FERRYMAN_GATEWAY__ALLOWED_HOSTS", json.dumps(allowed)),
            k.env("FERRYMAN_GATEWAY__BACKEND_HOSTS", json.dumps(hosts)),
            k.secret_env("FERRYMAN_GATEWAY__REPLICA_TOKEN", k.REPLICA_TOKEN),
            k.env("FERRYMAN_LOG_FORMAT", "json"),
            k.PLAIN_HTTP,
        ),
        mounts=({"name": "routes", "mountPath": ROUTES_DIR, "readOnly": True},),
    )  # fmt: skip
    volumes = ({"name": "routes", "configMap": {"name": "ferryman-routes"}},)
    pod = k.pod_spec(name, [container], volumes)
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": k.metadata(name, GATEWAY),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": k.labels(GATEWAY)}},
    }
    return [
        k.service_account(name, GATEWAY),
        k.deployment(name, GATEWAY, spec.gateway_min_replicas, pod),
        k.service(name, GATEWAY, GATEWAY_PORT),
        k.hpa(name, GATEWAY, spec.gateway_min_replicas, spec.gateway_max_replicas),
        budget,
    ]


def _gateway_hosts(spec: ClusterSpec) -> list[str]:
    """The Host names clients call the gateway by: the edge's, and its Service's."""
    return [spec.host, *k.service_names(GATEWAY_NAME, spec.namespace)]


def _backend_hosts(namespace: str, deployments: Sequence[DeploymentSpec]) -> list[str]:
    table = route_table(namespace, deployments)
    return [url.split("://", 1)[1].rsplit(":", 1)[0]
            for route in table["endpoints"].values()
            for variant in route["variants"] for url in variant["backends"]]  # fmt: skip


def _routes_config(spec: ClusterSpec, deployments: Sequence[DeploymentSpec]) -> k.Object:
    table = route_table(spec.namespace, deployments)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": k.metadata("ferryman-routes", GATEWAY),
        "data": {"routes.json": json.dumps(table, indent=1, sort_keys=True) + "\n"},
    }


def _network_policies(spec: ClusterSpec) -> list[k.Object]:
    """Replicas take connections from the gateway and the control plane (and Prometheus)."""
    callers = [
        {"podSelector": {"matchLabels": k.labels(GATEWAY)}},
        {"podSelector": {"matchLabels": k.labels(CONTROL)}},
        {"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": spec.prometheus_namespace}}},
    ]  # fmt: skip
    return [{
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": k.metadata("ferryman-replicas", REPLICA),
        "spec": {
            "podSelector": {"matchLabels": k.labels(REPLICA)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": callers,
                         "ports": [{"protocol": "TCP", "port": REPLICA_PORT[1]}]}],
        },
    }]  # fmt: skip


def _monitoring(rules: Sequence[AlertRule]) -> list[k.Object]:
    """ServiceMonitors of the three roles and the alert rules of ``export prometheus``."""
    relabel = [
        {"sourceLabels": [f"__meta_kubernetes_service_label_{_label(k.ENDPOINT_LABEL)}"],
         "targetLabel": "endpoint"},
        {"sourceLabels": [f"__meta_kubernetes_service_label_{_label(k.VARIANT_LABEL)}"],
         "targetLabel": "variant"},
    ]  # fmt: skip
    control_endpoint = {
        "port": "http",
        "path": "/metrics",
        "authorization": {"type": "Bearer", "credentials": {"name": k.SECRET, "key": "api-token"}},
    }
    replicas = {
        "port": REPLICA_PORT[0],
        "path": "/metrics",
        "relabelings": relabel,
        "authorization": {"type": "Bearer",
                          "credentials": {"name": k.SECRET, "key": k.REPLICA_TOKEN}},
    }  # fmt: skip
    return [
        _service_monitor("ferryman-control", CONTROL, control_endpoint),
        _service_monitor("ferryman-gateway", GATEWAY, {"port": "http", "path": "/metrics"}),
        _service_monitor("ferryman-replicas", REPLICA, replicas),
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": k.metadata("ferryman", CONTROL),
            "spec": {"groups": rule_groups(rules)},
        },
    ]


def _service_monitor(name: str, role: str, endpoint: dict[str, Any]) -> k.Object:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": k.metadata(name, role),
        "spec": {
            "selector": {"matchLabels": k.labels(role)},
            "endpoints": [{"interval": "15s", **endpoint}],
        },
    }


def _ingress(spec: ClusterSpec) -> k.Object:
    backend = {"service": {"name": GATEWAY_NAME, "port": {"name": GATEWAY_PORT[0]}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": k.metadata("ferryman-gateway", GATEWAY),
        "spec": {"rules": [{"host": spec.host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend}]}}]},
    }  # fmt: skip


def _httproute(spec: ClusterSpec) -> k.Object:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": k.metadata("ferryman-gateway", GATEWAY),
        "spec": {
            # The cluster's Gateway (its name and namespace are the platform team's).
            "parentRefs": [{"name": "ferryman", "kind": "Gateway"}],
            "hostnames": [spec.host],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": GATEWAY_NAME, "port": GATEWAY_PORT[1]}],
            }],
        },
    }  # fmt: skip


def _namespace(name: str) -> k.Object:
    # Pod Security Admission: the restricted profile, which every pod here meets.
    enforce = {"pod-security.kubernetes.io/enforce": "restricted"}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {k.PART_OF: "ferryman", **enforce}}}  # fmt: skip


def _kustomization(
    resources: list[str],
    namespace: str | None = None,
    images: list[dict[str, str]] | None = None,
    components: list[str] | None = None,
    patches: list[str] | None = None,
) -> str:
    document: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    }
    if namespace:
        document["namespace"] = namespace
    document["resources"] = resources
    if components:
        document["components"] = components
    if images:
        document["images"] = images
    if patches:
        document["patches"] = [{"path": path} for path in patches]
    return _HEADER + to_yaml(document)


def _component(resources: list[str]) -> str:
    document = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
                "resources": resources}  # fmt: skip
    return _HEADER + to_yaml(document)


def _documents(objects: Sequence[k.Object]) -> str:
    return _HEADER + "---\n".join(to_yaml(item) for item in objects)


def _label(key: str) -> str:
    """A label key as Prometheus names its service-discovery meta label."""
    return "".join(c if c.isalnum() else "_" for c in key)


_HEADER = "# Written by `ferryman export kubernetes`.\n"
