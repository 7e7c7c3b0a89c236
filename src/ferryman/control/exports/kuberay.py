"""Replicas on Ray through KubeRay: a ``RayCluster`` (``ray.io/v1``) for the Ray runtime.

The head schedules no work (``num-cpus: 0``); one autoscaling worker group carries the
replicas, which the Ray runtime starts as actors from the control plane: with ``ray.address``
the head's client port (``ray://ferryman-head-svc.NAMESPACE.svc:10001``, the Service KubeRay
creates for the head) it joins as a Ray Client driver, since it is no Ray node. The runtime
also keeps a gateway actor on every node, listening on the node's address and
``gateway.port``, and reading the route table from the control plane's Service
(``ray.control_url``); so in this overlay the ``ferryman-gateway`` Service selects the worker
pods (there is no gateway Deployment), and the control plane runs the ``ferryman-ray`` image
(Ferryman's image with Ray installed: the same Ray and Python as the cluster's, which Ray
Client needs).

KubeRay writes each pod's ``ray start`` line from ``rayStartParams``. The Ray runtime gives
each actor's server its settings itself (the control plane's, as ``FERRYMAN_*`` variables
it replaces the pod's with), so the pods carry no Ferryman settings, only the S3 Secret's
``AWS_*`` credentials that the servers' S3 client reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ferryman.control.exports import kubernetes_objects as k
from ferryman.registry import DeploymentSpec

CLUSTER = "ferryman"
HEAD_SERVICE = f"{CLUSTER}-head-svc"
"""The head's Service, which KubeRay creates and names after the cluster."""
REPLICA = "replica"
CLIENT_PORT = 10001
"""The head's Ray Client port, where the control plane (no Ray node) joins as a driver."""
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", CLIENT_PORT))
NODE_LABEL = "ferryman.dev/ray-node"
"""``head`` or ``worker``: the gateway Service selects the workers by it."""


def ray_cluster(deployments: Sequence[DeploymentSpec], gateway_port: int) -> list[k.Object]:
    """The replicas' ServiceAccount, the RayCluster and the NetworkPolicy of its pods;
    ``gateway_port`` is where the gateway actor of each node listens."""
    low, high = _worker_bounds(deployments)
    worker = _pod("worker", (("http", gateway_port),), k.Resources("1", "1Gi", "2", "2Gi"))
    # Endpoints of the gateway Service: a worker once its gateway answers (KubeRay adds
    # its own liveness probe, and readiness where none is given).
    worker["spec"]["containers"][0]["readinessProbe"] = k.Probe(
        "/-/healthz", 5, host="localhost"
    ).document("http")
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
                # NetworkPolicy below admits only Ray's pods and the control plane to it.
                "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},  # noqa: S104
                "template": _head_pod(),
            },
            "workerGroupSpecs": [{
                "groupName": "replicas",
                "replicas": low,
                "minReplicas": low,
                "maxReplicas": high,
                "rayStartParams": {},
                "template": worker,
            }],
        },
    }  # fmt: skip
    return [k.service_account("ferryman-replica", REPLICA), cluster, _network_policy(gateway_port)]


def control_plane_patch(
    namespace: str, control: tuple[str, int], gateway: tuple[int, list[str]],
    backend_networks: Sequence[str],
) -> k.Object:  # fmt: skip
    """The patch that puts the control plane (``control``: its Service's name and port) on
    the Ray runtime: the Ray image, the head's client address, the URL its gateway actors
    read routes from, and the settings those gateways run with (``gateway``: the port, the
    Host names clients call them by); replicas listen on pod addresses, which the gateways
    accept inside ``backend_networks``."""
    name, control_port = control
    port, hosts = gateway
    env = [
        k.env("FERRYMAN_CONTROL__RUNTIME", "ray"),
        k.env("FERRYMAN_RAY__ADDRESS", f"ray://{HEAD_SERVICE}.{namespace}.svc:{CLIENT_PORT}"),
        k.env("FERRYMAN_RAY__CONTROL_URL", f"http://{name}.{namespace}.svc:{control_port}"),
        k.env("FERRYMAN_GATEWAY__PORT", str(port)),
        # On a node's address: the Service of the workers and the Ingress are in front.
        k.env("FERRYMAN_GATEWAY__ALLOW_INSECURE_BIND", "true"),
        k.env("FERRYMAN_GATEWAY__ALLOWED_HOSTS", json.dumps(hosts)),
        k.env("FERRYMAN_GATEWAY__BACKEND_HOSTS", json.dumps(list(backend_networks))),
    ]  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [
            {"name": "control-plane", "image": k.RAY_IMAGE, "env": env},
        ]}}},
    }  # fmt: skip


def gateway_service(name: str, port: tuple[str, int]) -> k.Object:
    """The gateway Service of this flavour: the gateway actors on the worker pods, on the
    port every one of them listens on. No Deployment, HPA or PodDisruptionBudget of the
    gateway here: KubeRay's autoscaler sizes the workers, and KubeRay removes and replaces
    worker pods itself, not by eviction (a budget on a group of one worker would only block
    node drains)."""
    service = k.service(name, "gateway", port)
    service["spec"]["selector"] = _node_labels("worker")
    return service


def _network_policy(gateway_port: int) -> k.Object:
    """Ray's pods reach each other on every port (Ray's own, and the gateways' calls to the
    replicas on the ports the runtime gives them); the control plane reaches them on every
    port (Ray Client on the head, its probes of the replicas); anyone reaches the gateways."""
    ray_pods = {"matchExpressions": [{"key": NODE_LABEL, "operator": "Exists"}]}
    control = {"podSelector": {"matchLabels": k.labels("control-plane")}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": k.metadata("ferryman-ray", REPLICA),
        "spec": {
            "podSelector": ray_pods,
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": ray_pods}, control]},
                {"ports": [{"protocol": "TCP", "port": gateway_port}]},
            ],
        },
    }


def _head_pod() -> k.Object:
    """The head: its autoscaler sidecar calls the Kubernetes API with the ServiceAccount and
    Role that KubeRay creates (named after the cluster) when the pod names none."""
    template = _pod("head", HEAD_PORTS, k.Resources("1", "2Gi", "2", "4Gi"))
    del template["spec"]["serviceAccountName"]
    template["spec"]["automountServiceAccountToken"] = True
    return template


def _node_labels(node: str) -> dict[str, str]:
    return k.labels(REPLICA, **{NODE_LABEL: node})


def _pod(node: str, ports: Sequence[tuple[str, int]], resources: k.Resources) -> k.Object:
    container = {
        "name": f"ray-{node}",
        "image": k.RAY_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": port, "containerPort": number, "protocol": "TCP"}
                  for port, number in ports],
        "envFrom": k.s3_env_from(),
        "resources": resources.document(),
        "securityContext": k.container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - Ray's session dir
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108 - Ray's object store
            # Written: each actor's server keeps its log (and a gateway its route file)
            # under DATA_DIR/ray/ACTOR.
            {"name": "data", "mountPath": k.DATA_DIR},
        ],
    }  # fmt: skip
    volumes = (
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": k.DATA_CLAIM}},
    )
    pod = k.pod_spec("ferryman-replica", [container], volumes)
    pod["volumes"][0]["emptyDir"]["sizeLimit"] = "2Gi"  # Ray's logs and spilled objects
    return {"metadata": {"labels": _node_labels(node)}, "spec": pod}


def _worker_bounds(deployments: Sequence[DeploymentSpec]) -> tuple[int, int]:
    """Worker pods: the replicas the endpoints want at least, and at most (one pod each)."""
    low = high = 0
    for spec in deployments:
        for variant in spec.variants:
            scaling = spec.autoscaling
            low += scaling.min_replicas if scaling else variant.replicas
            high += scaling.max_replicas if scaling else variant.replicas
    return max(1, low), max(1, high)
