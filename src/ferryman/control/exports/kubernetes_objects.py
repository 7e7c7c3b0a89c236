"""Building blocks of Ferryman's Kubernetes objects: names, labels, containers and pods.

Every container runs the one image (``IMAGE``, a name kustomize's ``images:`` replaces)
as the numeric non-root user of the Containerfile, on a read-only root filesystem with
all capabilities dropped, the RuntimeDefault seccomp profile and requests and limits;
``/tmp`` is an emptyDir, the only place Python may write besides mounted volumes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

IMAGE = "ferryman"
"""The image name in the manifests; ``kustomization.yaml``'s ``images:`` sets the real one."""
RAY_IMAGE = "ferryman-ray"
"""The image of the KubeRay flavour (the Ray runtime's, with Ray installed)."""
USER_ID = 10001
"""The Containerfile's user."""
SECRET = "ferryman-secrets"  # noqa: S105 - the Secret's name, not a secret
"""Keys: ``database-url`` (PostgreSQL URL of the registry), ``api-token``, ``replica-token``."""
REPLICA_TOKEN = "replica-token"  # noqa: S105 - a key of SECRET, not a secret
"""The key of the fleet's replica token: replicas take it as ``serving.token``, the gateway
shows it to them as ``gateway.replica_token``, Prometheus as its bearer token."""
S3_SECRET = "ferryman-s3"  # noqa: S105 - the Secret's name
"""Optional, for artifacts on S3: ``FERRYMAN_ARTIFACTS__URL`` (``s3://BUCKET/PREFIX``),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optionally ``AWS_REGION`` and
``FERRYMAN_ARTIFACTS__ENDPOINT_URL``; the control plane and the replicas read it whole."""
CACHE_DIR = "/tmp/artifact-cache"  # noqa: S108 - the pod's own emptyDir
"""Replicas' cache of S3 artifacts: the data claim is read-only to them."""
DATA_CLAIM = "ferryman-data"
DATA_DIR = "/var/lib/ferryman"
PART_OF = "app.kubernetes.io/part-of"
ROLE = "app.kubernetes.io/component"
ENDPOINT_LABEL = "ferryman.dev/endpoint"
VARIANT_LABEL = "ferryman.dev/variant"
NAME_MAX = 63

Object = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def document(self) -> Object:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class Probe:
    """An HTTP probe on a container's port; ``host`` is the Host header it sends."""

    path: str
    period_s: int = 10
    failure_threshold: int = 3
    host: str | None = None

    def document(self, port: str) -> Object:
        get: Object = {"path": self.path, "port": port}
        if self.host:
            get["httpHeaders"] = [{"name": "Host", "value": self.host}]
        return {
            "httpGet": get,
            "periodSeconds": self.period_s,
            "failureThreshold": self.failure_threshold,
            "timeoutSeconds": 2,
        }


@dataclass(frozen=True)
class Probes:
    startup: Probe
    readiness: Probe
    liveness: Probe


def object_name(*parts: str) -> str:
    """A DNS-1123 label from ``parts``; a long one keeps its start and a hash of the whole."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAME_MAX - 9].rstrip('-')}-{digest}"


def labels(role: str, **extra: str) -> dict[str, str]:
    return {PART_OF: "ferryman", ROLE: role, **extra}


def metadata(name: str, role: str, **extra: str) -> Object:
    return {"name": name, "labels": labels(role, **extra)}


def container_security() -> Object:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container(
    name: str,
    args: list[str],
    port: tuple[str, int],
    resources: Resources,
    probes: Probes | None,
    *,
    env: tuple[Object, ...] = (),
    mounts: tuple[Object, ...] = (),
    image: str = IMAGE,
) -> Object:
    """One container of the image, running ``ferryman ARGS`` (the image's entrypoint)."""
    port_name, number = port
    document: Object = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": port_name, "containerPort": number, "protocol": "TCP"}],
        "env": list(env),
        "resources": resources.document(),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],  # noqa: S108
    }
    if probes is not None:
        document["startupProbe"] = probes.startup.document(port_name)
        document["readinessProbe"] = probes.readiness.document(port_name)
        document["livenessProbe"] = probes.liveness.document(port_name)
    return document


def pod_spec(
    service_account: str, containers: list[Object], volumes: tuple[Object, ...] = ()
) -> Object:
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 45,
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, *volumes],
    }


def service_account(name: str, role: str) -> Object:
    """A ServiceAccount without a mounted token: Ferryman never calls the Kubernetes API."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name, role),
        "automountServiceAccountToken": False,
    }


def service(name: str, role: str, port: tuple[str, int], **extra: str) -> Object:
    port_name, number = port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, role, **extra),
        "spec": {
            "selector": {PART_OF: "ferryman", ROLE: role, **extra},
            "ports": [{"name": port_name, "port": number, "targetPort": port_name}],
        },
    }


def deployment(name: str, role: str, replicas: int, pod: Object, **extra: str) -> Object:
    selector = {PART_OF: "ferryman", ROLE: role, **extra}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, role, **extra),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": pod},
        },
    }


def hpa(name: str, role: str, min_replicas: int, max_replicas: int, **extra: str) -> Object:
    """An ``autoscaling/v2`` HPA on the Deployment ``name``, on CPU utilisation."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, role, **extra),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu",
                             "target": {"type": "Utilization", "averageUtilization": 70}},
            }],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
        },
    }  # fmt: skip


def secret_env(name: str, key: str, *, optional: bool = False) -> Object:
    reference: Object = {"name": SECRET, "key": key}
    if optional:
        reference["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": reference}}


def s3_env_from() -> list[Object]:
    """The optional S3 Secret as environment (nothing when it does not exist)."""
    return [{"secretRef": {"name": S3_SECRET, "optional": True}}]


POD_IP = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
"""The pod's IP as ``$(POD_IP)``: Prometheus scrapes a pod by it, and it is the Host it sends."""


def service_hosts(name: str, namespace: str) -> list[str]:
    """The Host values a Service's pods are called by: its DNS names and the pod's IP (the
    DNS-rebinding guard of every Ferryman server refuses any other; Kubernetes expands
    ``$(POD_IP)`` from :data:`POD_IP`, which must come first in the environment)."""
    return [*service_names(name, namespace), "$(POD_IP)"]


def service_names(name: str, namespace: str) -> list[str]:
    """The DNS names of a Service in its cluster."""
    return [name, f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]


PLAIN_HTTP = {"name": "FERRYMAN_CONNECTIONS__INSECURE_HTTP", "value": "true"}
"""Every server refuses plain HTTP off loopback unless told: in a cluster TLS ends at the
Ingress or Gateway, and pods call each other by plain HTTP (add a mesh's mTLS, or
``tls_cert_file`` from a Secret, where that is not enough)."""


def env(name: str, value: str) -> Object:
    return {"name": name, "value": value}
