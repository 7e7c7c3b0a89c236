"""Replicas without Ray: one Deployment + Service (+ HPA) per variant of each endpoint.

Each variant's pods run ``ferryman serve MODEL:VERSION [--variant KIND]`` against the
registry (PostgreSQL, from the Secret) and read artifacts from the shared data claim; the
gateway's route table names each variant's Service. A registry without deployments gives
one example endpoint, a template to copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ferryman.control.exports import kubernetes_objects as k
from ferryman.registry import DeploymentSpec, VariantSpec

REPLICA = "replica"
REPLICA_PORT = ("http", 8080)
TOKEN_ENV = "FERRYMAN_SERVING__TOKEN"  # noqa: S105 - the variable's name, not a secret
EXAMPLE = DeploymentSpec(endpoint="example", variants=(VariantSpec(model="example", version=1),))


def replica_name(endpoint: str, variant: str) -> str:
    return k.object_name("ferryman", endpoint, variant)


def serve_args(variant: VariantSpec) -> list[str]:
    """The ``ferryman serve`` command line of one variant's replicas."""
    args = ["serve", f"{variant.model}:{variant.version}"]
    if variant.kind is not None:
        args += ["--variant", variant.kind]
    return [*args, "--host", "0.0.0.0", "--port", str(REPLICA_PORT[1])]  # noqa: S104 - a pod


def replica_env(spec: DeploymentSpec, hosts: list[str]) -> tuple[k.Object, ...]:
    """The environment of a replica: registry, data dir, the Host names it answers (the
    gateway calls it by its Service's name), the endpoint's batching settings."""
    tuned = {
        "FERRYMAN_SERVING__MAX_BATCH_SIZE": spec.max_batch_size,
        "FERRYMAN_SERVING__MAX_DELAY_MS": spec.max_delay_ms,
        "FERRYMAN_SERVING__INTRA_OP_THREADS": spec.intra_op_threads,
    }
    return (
        k.POD_IP,
        k.env("FERRYMAN_SERVING__ALLOWED_HOSTS", json.dumps(hosts)),
        k.env("FERRYMAN_DATA_DIR", k.DATA_DIR),
        k.secret_env("FERRYMAN_DATABASE_URL", "database-url"),
        # The fleet's secret, as the local and Ray runtimes hand it: the gateway reads the
        # same key, so only it (and Prometheus, told the key) gets past a replica's auth.
        k.secret_env(TOKEN_ENV, k.REPLICA_TOKEN),
        k.env("FERRYMAN_LOG_FORMAT", "json"),
        k.PLAIN_HTTP,
        k.env("FERRYMAN_ARTIFACTS__CACHE_DIR", k.CACHE_DIR),  # used with artifacts on S3
        *(k.env(name, f"{value:g}") for name, value in tuned.items() if value is not None),
    )


def ready_command(port: int) -> list[str]:
    """An exec probe of ``/v2/health/ready`` with the replica's token, which the kubelet's
    HTTP probes cannot carry (their headers are literals; the token is in a Secret). Python,
    not a shell: the image has none. Exit 0 when ready."""
    code = (
        "import http.client, os; "
        f"c = http.client.HTTPConnection('127.0.0.1', {port}, timeout=4); "
        "c.request('GET', '/v2/health/ready', "
        f"headers={{'authorization': 'Bearer ' + os.environ['{TOKEN_ENV}']}}); "
        "raise SystemExit(c.getresponse().status != 200)"
    )
    return ["python", "-c", code]


def replica_container(
    spec: DeploymentSpec, variant: VariantSpec, image: str, namespace: str
) -> k.Object:
    # The kubelet's probes would name the pod's IP as Host; localhost is always allowed.
    # Readiness needs the token: an exec probe replaces it below.
    probes = k.Probes(
        startup=k.Probe("/v2/health/live", 2, 60, "localhost"),
        readiness=k.Probe("/v2/health/ready", 5, host="localhost"),
        liveness=k.Probe("/v2/health/live", host="localhost"),
    )
    hosts = k.service_hosts(replica_name(spec.endpoint, variant.name), namespace)
    container = k.container(
        "replica",
        serve_args(variant),
        REPLICA_PORT,
        k.Resources("500m", "512Mi", "2", "2Gi"),
        probes,
        env=replica_env(spec, hosts),
        mounts=({"name": "data", "mountPath": k.DATA_DIR, "readOnly": True},),
        image=image,
    )
    ready = container["readinessProbe"]
    container["readinessProbe"] = {
        "exec": {"command": ready_command(REPLICA_PORT[1])},
        **{key: value for key, value in ready.items() if key != "httpGet"},
        "timeoutSeconds": 5,  # an interpreter's start, on a busy node
    }
    container["envFrom"] = k.s3_env_from()
    return container


def replica_objects(deployments: Sequence[DeploymentSpec], namespace: str) -> list[k.Object]:
    """Deployment, Service and (when the endpoint autoscales) HPA of every variant."""
    objects: list[k.Object] = [k.service_account("ferryman-replica", REPLICA)]
    for spec in deployments or (EXAMPLE,):
        for variant in spec.variants:
            objects += _variant_objects(spec, variant, namespace)
    return objects


def _variant_objects(spec: DeploymentSpec, variant: VariantSpec, namespace: str) -> list[k.Object]:
    name = replica_name(spec.endpoint, variant.name)
    tags = {k.ENDPOINT_LABEL: spec.endpoint, k.VARIANT_LABEL: variant.name}
    volumes = ({"name": "data", "persistentVolumeClaim": {"claimName": k.DATA_CLAIM,
                                                          "readOnly": True}},)  # fmt: skip
    pod = k.pod_spec(
        "ferryman-replica", [replica_container(spec, variant, k.IMAGE, namespace)], volumes
    )
    pod["volumes"][0]["emptyDir"]["sizeLimit"] = "2Gi"  # holds the S3 cache when there is one
    scaling = spec.autoscaling
    low = max(1, variant.standby_replicas or (scaling.min_replicas if scaling else 1))
    replicas = low if scaling else variant.replicas
    objects = [
        k.deployment(name, REPLICA, replicas, pod, **tags),
        k.service(name, REPLICA, REPLICA_PORT, **tags),
    ]
    if scaling is not None:
        objects.append(k.hpa(name, REPLICA, low, max(low, scaling.max_replicas), **tags))
    return objects


def route_table(namespace: str, deployments: Sequence[DeploymentSpec]) -> dict[str, Any]:
    """The gateway's route table (``RouteTable`` JSON): each variant at its Service."""
    endpoints = {}
    for spec in deployments:
        variants = [
            {"name": v.name, "model": v.model, "version": v.version, "weight": v.weight,
             "backends": [f"http://{replica_name(spec.endpoint, v.name)}.{namespace}.svc:"
                          f"{REPLICA_PORT[1]}"]}
            for v in spec.variants
        ]  # fmt: skip
        route: dict[str, Any] = {"endpoint": spec.endpoint, "variants": variants}
        if spec.rules:
            route["rules"] = [rule.model_dump() for rule in spec.rules]
        if spec.sticky_header:
            route["sticky_header"] = spec.sticky_header
        if spec.shadow:
            route["shadow"] = spec.shadow
        endpoints[spec.endpoint] = route
    return {"generation": 1, "endpoints": endpoints}
