"""Replicas on Ray through KubeRay: a ``RayCluster`` (``ray.io/v1``) for the Ray runtime.

The head schedules no work (``num-cpus: 0``); one autoscaling worker group carries the
replicas, which the Ray runtime starts as actors from the control plane (a driver on the
head's client port, ``ray://ferryman-head-svc:10001``). KubeRay writes each pod's
``ray start`` line from ``rayStartParams``. The image is ``ferryman-ray``: Ferryman's image
with Ray installed (the Ray runtime's extra), set in the overlay's ``images:``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ferryman.control.exports import kubernetes_objects as k
from ferryman.registry import DeploymentSpec

CLUSTER = "ferryman"
REPLICA = "replica"
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", 10001))
WORKER_PORT = ("http", 8080)


def ray_cluster(deployments: Sequence[DeploymentSpec]) -> list[k.Object]:
    """The replicas' ServiceAccount, the RayCluster and the NetworkPolicy of its pods."""
    low, high = _worker_bounds(deployments)
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": k.metadata(CLUSTER, REPLICA),
        "spec": {
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "upscalingMode": "Default",
                "idleTimeoutSeconds": 60,
                "resources": k.Resources("100m", "256Mi", "500m", "512Mi").document(),
                "securityContext": k.container_security(),
            },
            "headGroupSpec": {
                # The pod's address, for KubeRay's probes and the autoscaler; the
                # NetworkPolicy below admits only the control plane to the head's ports.
                "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},  # noqa: S104
                "template": _head_pod(),
            },
            "workerGroupSpecs": [{
                "groupName": "replicas",
                "replicas": low,
                "minReplicas": low,
                "maxReplicas": high,
                "rayStartParams": {},
                "template": _pod("ray-worker", (WORKER_PORT,),
                                 k.Resources("1", "1Gi", "2", "2Gi")),
            }],
        },
    }  # fmt: skip
    in_cluster = {"podSelector": {"matchLabels": {"ray.io/cluster": CLUSTER}}}
    control = {"podSelector": {"matchLabels": k.labels("control-plane")}}
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": k.metadata("ferryman-ray", REPLICA),
        "spec": {
            "podSelector": {"matchLabels": {"ray.io/cluster": CLUSTER}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [in_cluster]},
                {"from": [control], "ports": [{"protocol": "TCP", "port": port}
                                              for _, port in HEAD_PORTS]},
            ],
        },
    }  # fmt: skip
    return [k.service_account("ferryman-replica", REPLICA), cluster, policy]


def _head_pod() -> k.Object:
    """The head: its autoscaler sidecar calls the Kubernetes API with the ServiceAccount and
    Role that KubeRay creates (named after the cluster) when the pod names none."""
    template = _pod("ray-head", HEAD_PORTS, k.Resources("1", "2Gi", "2", "4Gi"))
    del template["spec"]["serviceAccountName"]
    template["spec"]["automountServiceAccountToken"] = True
    return template


def _pod(name: str, ports: Sequence[tuple[str, int]], resources: k.Resources) -> k.Object:
    container = {
        "name": name,
        "image": k.RAY_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": port, "containerPort": number, "protocol": "TCP"}
                  for port, number in ports],
        "env": [k.env("FERRYMAN_DATA_DIR", k.DATA_DIR),
                k.secret_env("FERRYMAN_DATABASE_URL", "database-url"),
                k.env("FERRYMAN_ARTIFACTS__CACHE_DIR", k.CACHE_DIR)],
        "envFrom": k.s3_env_from(),
        "resources": resources.document(),
        "securityContext": k.container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - Ray's session dir
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108 - Ray's object store
            {"name": "data", "mountPath": k.DATA_DIR, "readOnly": True},
        ],
    }  # fmt: skip
    volumes = (
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": k.DATA_CLAIM, "readOnly": True}},
    )
    pod = k.pod_spec("ferryman-replica", [container], volumes)
    pod["volumes"][0]["emptyDir"]["sizeLimit"] = "2Gi"  # Ray's logs and spilled objects
    return {"metadata": {"labels": k.labels(REPLICA)}, "spec": pod}


def _worker_bounds(deployments: Sequence[DeploymentSpec]) -> tuple[int, int]:
    """Worker pods: the replicas the endpoints want at least, and at most (one pod each)."""
    low = high = 0
    for spec in deployments:
        for variant in spec.variants:
            scaling = spec.autoscaling
            low += scaling.min_replicas if scaling else variant.replicas
            high += scaling.max_replicas if scaling else variant.replicas
    return max(1, low), max(1, high)
