"""``ferryman export kubernetes``: the built overlays are wired to serve, not only valid.

The schemas say each object is well formed; these say the objects fit together once
applied: the edge reaches a Service that selects pods declaring its target port, on which
a Ferryman gateway listens; the gateway shows replicas the token they check; the KubeRay
flavour's control plane runs the Ray runtime on the RayCluster's head, and its gateways
accept the replicas' pod addresses; the NetworkPolicies admit that traffic and no more.
Each setting is read by Ferryman's own loader from the container's environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from ferryman.connection_limits import check_tls_bind
from ferryman.control.exports.kubernetes_replicas import TOKEN_ENV, ready_command
from ferryman.engines.onnx import OnnxEngine
from ferryman.fleet_secret import replica_headers
from ferryman.gateway.routes import RouteTable
from ferryman.host_policy import HostPolicy
from ferryman.serving.auth import expected_credentials, is_authorized
from tests.control.exports.manifests import (
    OVERLAYS,
    POD_IP,
    Built,
    containers,
    environment,
    load_settings_from,
    matches,
    pod_templates,
)
from tests.serving.conftest import affine_model, replica, serving_in_thread

Pod = tuple[str, dict[str, Any]]
"""The name of a pod template's owner, and the template."""


def objects(items: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in items if item["kind"] == kind}


def pods(items: list[dict[str, Any]]) -> list[Pod]:
    return [(item["metadata"]["name"], template) for item in items
            for template in pod_templates(item)]  # fmt: skip


def edge_backends(items: list[dict[str, Any]]) -> list[tuple[str, str | int]]:
    """(Service name, port name or number) of every Ingress and HTTPRoute backend."""
    found: list[tuple[str, str | int]] = []
    for ingress in objects(items, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = path["backend"]["service"]
                found.append((service["name"], next(iter(service["port"].values()))))
    for route in objects(items, "HTTPRoute").values():
        for rule in route["spec"]["rules"]:
            found += [(ref["name"], ref["port"]) for ref in rule["backendRefs"]]
    return found


def selected_ports(items: list[dict[str, Any]], name: str, port: str | int) -> list[Pod]:
    """The pods Service ``name`` sends ``port`` to: their labels match its selector and a
    container declares its target port (asserted: at least one such pod)."""
    service = objects(items, "Service").get(name)
    assert service is not None, f"no Service {name}"
    (entry,) = [p for p in service["spec"]["ports"] if port in (p["name"], p["port"])]
    target = entry["targetPort"]
    chosen = [pod for pod in pods(items)
              if matches(service["spec"]["selector"], pod[1]["metadata"]["labels"])]  # fmt: skip
    assert chosen, f"Service {name} selects no pod"
    for owner, template in chosen:
        declared = [(p["name"], p["containerPort"]) for c in template["spec"]["containers"]
                    for p in c.get("ports", [])]  # fmt: skip
        assert any(target in pair for pair in declared), f"{owner} does not declare {target}"
    return chosen


def selected_target(items: list[dict[str, Any]], name: str, port: str | int) -> str | int:
    service = objects(items, "Service")[name]
    (entry,) = [p for p in service["spec"]["ports"] if port in (p["name"], p["port"])]
    target: str | int = entry["targetPort"]
    return target


def port_number(template: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(int(p["containerPort"]) for c in template["spec"]["containers"]
                for p in c.get("ports", []) if p["name"] == port)  # fmt: skip


def control_plane(items: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = containers(objects(items, "Deployment")["ferryman-control"])
    return container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_pods_that_declare_its_target_port(
    built: Built, overlay: str
) -> None:
    """Service by Service (the edge's first): some pod template matches the selector and
    declares the target port. A Service that selects nothing serves nothing."""
    items = built[overlay]
    backends = edge_backends(items)
    assert backends == [("ferryman-gateway", "http")] or backends == [("ferryman-gateway", 8000)]
    for name, port in backends:
        selected_ports(items, name, port)
    for name, service in objects(items, "Service").items():
        for entry in service["spec"]["ports"]:
            selected_ports(items, name, entry["name"])


def test_the_edge_reaches_gateways_listening_on_the_target_port(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Plain: the pods behind the edge run ``ferryman gateway --port`` that port. KubeRay:
    they are Ray workers, whose gateway actors listen on the control plane's
    ``gateway.port``; in both the gateway answers the edge's Host."""
    for overlay in OVERLAYS:
        items = built[overlay]
        ((name, port),) = edge_backends(items)
        hosts = [rule["host"] for o in objects(items, "Ingress").values()
                 for rule in o["spec"]["rules"]]  # fmt: skip
        hosts += [h for o in objects(items, "HTTPRoute").values() for h in o["spec"]["hostnames"]]
        for owner, template in selected_ports(items, name, port):
            number = port_number(template, selected_target(items, name, port))
            if overlay == "deployments":
                (container,) = template["spec"]["containers"]
                args = container["args"]
                assert args[0] == "gateway"
                assert int(args[args.index("--port") + 1]) == number
                settings = load_settings_from(container, monkeypatch, tmp_path).gateway
            else:
                assert owner == "ferryman"  # the RayCluster's worker group
                assert template["metadata"]["labels"]["ferryman.dev/ray-node"] == "worker"
                control = load_settings_from(control_plane(items), monkeypatch, tmp_path)
                settings = control.gateway
                assert settings.port == number
                # The runtime binds the gateway to the node's address, off loopback.
                assert settings.allow_insecure_bind
                check_tls_bind(POD_IP, False, control.connections.insecure_http)
            policy = HostPolicy.for_server(POD_IP, number, settings.allowed_hosts)
            for host in hosts:
                assert policy.refusal([(b"host", host.encode())], "POST", "http") is None


def test_replicas_take_the_token_the_gateway_shows_them(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Plain flavour: the gateway's replica_token and every replica's serving.token come
    from the same key of the same Secret, so the gateway's header passes a replica's check
    (and a replica never runs without auth); Prometheus scrapes replicas with that key."""
    items = built["deployments"]
    deployments = objects(items, "Deployment")
    (gateway,) = containers(deployments["ferryman-gateway"])
    shown = load_settings_from(gateway, monkeypatch, tmp_path).gateway.replica_token
    assert shown is not None
    header = replica_headers(shown.get_secret_value())["authorization"].encode()
    (reference,) = [e["valueFrom"] for e in gateway["env"]
                    if e["name"] == "FERRYMAN_GATEWAY__REPLICA_TOKEN"]  # fmt: skip
    checked = 0
    for name, deployment in deployments.items():
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] != "replica":
            continue
        (container,) = containers(deployment)
        (own,) = [e["valueFrom"] for e in container["env"] if e["name"] == TOKEN_ENV]
        assert own == reference, name
        serving = load_settings_from(container, monkeypatch, tmp_path).serving
        assert not serving.is_remote_without_auth_allowed
        expected = expected_credentials(serving)
        assert expected is not None
        assert is_authorized(header, expected)
        assert not is_authorized(b"Bearer another", expected)
        checked += 1
    assert checked == 3
    monitor = objects(items, "ServiceMonitor")["ferryman-replicas"]
    (endpoint,) = monitor["spec"]["endpoints"]
    key = endpoint["authorization"]["credentials"]
    assert {"name": key["name"], "key": key["key"]} == reference["secretKeyRef"]


def test_the_readiness_probe_carries_the_token_to_a_real_replica(tmp_path: Path) -> None:
    """The exec probe, run as the kubelet runs it (the container's environment), passes a
    ready replica that checks the token and fails without the right one."""
    app = replica(OnnxEngine(affine_model()), token=SecretStr("fleet-secret"))
    with serving_in_thread(app, token=SecretStr("fleet-secret")) as server:
        port = int(server.address.rsplit(":", 1)[1])
        python, *command = ready_command(port)
        assert python == "python"  # the image's interpreter, on its PATH
        for token, code in (("fleet-secret", 0), ("not-it", 1)):
            probe = subprocess.run([sys.executable, *command], env={TOKEN_ENV: token},
                                   capture_output=True, timeout=30, check=False,
                                   cwd=tmp_path)  # fmt: skip
            assert probe.returncode == code, probe.stderr


def test_kuberay_control_plane_runs_the_ray_runtime_on_the_head(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The control plane joins the RayCluster's head through its client port (the Service
    KubeRay names ``CLUSTER-head-svc``), from the Ray image; its gateway actors read routes
    from the control plane's Service; replicas' pod addresses pass the gateways' check."""
    items = built["kuberay"]
    container = control_plane(items)
    settings = load_settings_from(container, monkeypatch, tmp_path)
    assert settings.control.runtime == "ray"
    (cluster,) = objects(items, "RayCluster").values()
    address = urlsplit(settings.ray.address)
    assert address.scheme == "ray"  # Ray Client: the control plane is no Ray node
    namespace = cluster["metadata"]["namespace"]
    assert address.hostname == f"{cluster['metadata']['name']}-head-svc.{namespace}.svc"
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"name": "client", "containerPort": address.port, "protocol": "TCP"} in head["ports"]
    assert container["image"] == head["image"]  # Ray Client needs the same Ray and Python
    assert container["image"].startswith("registry.example.com/ferryman-ray:")

    feed = urlsplit(settings.ray.control_url or "")
    assert feed.hostname == f"ferryman-control.{namespace}.svc"
    control = objects(items, "Service")["ferryman-control"]
    (entry,) = control["spec"]["ports"]
    assert feed.port == entry["port"]
    selected_ports(items, "ferryman-control", entry["name"])
    api = settings.control
    policy = HostPolicy.for_server("0.0.0.0", api.port, api.allowed_hosts)
    assert policy.refusal([(b"host", feed.netloc.encode())], "GET", "http") is None

    table = ('{"generation": 1, "endpoints": {"d": {"endpoint": "d", "variants": [{"name": '
             '"a", "model": "d", "version": 1, "weight": 100, "backends": ["http://HOST:41234"]'
             '}]}}}')  # fmt: skip
    RouteTable.from_json(table.replace("HOST", POD_IP), settings.gateway.backend_hosts)
    with pytest.raises(ValueError, match="neither loopback"):
        RouteTable.from_json(table.replace("HOST", "example.com"), settings.gateway.backend_hosts)


def test_kuberay_pods_carry_no_ferryman_settings_and_write_their_actor_logs(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The runtime gives each actor's server the control plane's settings and drops the
    node's FERRYMAN_ variables (but not the S3 Secret's AWS_ ones); the servers write
    under the control plane's data dir (its ray/ folder), which the Ray pods mount at the
    same path, writable."""
    items = built["kuberay"]
    data_dir = load_settings_from(control_plane(items), monkeypatch, tmp_path).data_dir
    (cluster,) = objects(items, "RayCluster").values()
    for container in containers(cluster):
        assert not [name for name in environment(container) if name.startswith("FERRYMAN_")]
        assert container["envFrom"] == [{"secretRef": {"name": "ferryman-s3", "optional": True}}]
        data = next(m for m in container["volumeMounts"] if m["name"] == "data")
        assert Path(data["mountPath"]) == data_dir.absolute()
        assert not data.get("readOnly", False)


def test_kuberay_network_policy_admits_clients_to_gateways_and_the_rest_to_ray_pods(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Anyone (the Ingress controller, Prometheus) reaches the gateway port of the Ray pods;
    every other port only from the Ray pods (Ray itself, the gateways calling replicas) and
    the control plane (Ray Client, its probes of replicas on the ports the runtime picks)."""
    items = built["kuberay"]
    policy = objects(items, "NetworkPolicy")["ferryman-ray"]
    templates = pods(items)
    ray_pods = [t for owner, t in templates if owner == "ferryman"]
    others = [t for owner, t in templates if owner != "ferryman"]
    assert len(ray_pods) == 2
    assert all(matches(policy["spec"]["podSelector"], t["metadata"]["labels"]) for t in ray_pods)
    assert not any(matches(policy["spec"]["podSelector"], t["metadata"]["labels"])
                   for t in others)  # fmt: skip
    open_to_all, from_peers = sorted(policy["spec"]["ingress"], key=lambda rule: "from" in rule)
    gateway_port = load_settings_from(control_plane(items), monkeypatch, tmp_path).gateway.port
    assert open_to_all == {"ports": [{"protocol": "TCP", "port": gateway_port}]}
    assert "ports" not in from_peers
    (control_pod,) = [t for owner, t in templates if owner == "ferryman-control"]
    peers = [p["podSelector"] for p in from_peers["from"]]
    assert any(matches(selector, control_pod["metadata"]["labels"]) for selector in peers)
    assert all(any(matches(s, t["metadata"]["labels"]) for s in peers) for t in ray_pods)
