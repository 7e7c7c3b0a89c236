"""``ferryman export kubernetes``: every overlay builds with kubectl's kustomize, every object
validates offline (built-in kinds with kubernetes-validate, custom resources against their
CRDs' published schemas in ``crd_schemas/``), and every command line is one the CLI takes.

No Kubernetes API server can be had on these machines (no kind, k3s or kube-apiserver in
any registry here): what can be checked offline is checked here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer

from ferryman.cli.main import app
from ferryman.connection_limits import check_tls_bind
from ferryman.control.exports.kubernetes import ClusterSpec, render, split_image
from ferryman.control.exports.kubernetes_replicas import ready_command
from ferryman.control.monitor.alerts import DEFAULT_RULES
from ferryman.errors import InvalidInput
from ferryman.gateway.routes import RouteTable
from ferryman.host_policy import HostPolicy
from tests.control.exports.manifests import (
    CRD_RELEASES,
    CRD_SCHEMAS,
    DEPLOYMENTS,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    POD_IP,
    SCHEMAS,
    Built,
    check_golden,
    containers,
    crd_validator,
    kustomize,
    load_settings_from,
    needs_kubectl,
    pod_templates,
    write,
)

KUBERNETES_CRDS = {key: file for key, file in CRD_SCHEMAS.items() if key[1] != "InferenceService"}


def test_overlays_hold_the_parts(built: Built) -> None:
    kinds = {overlay: sorted({o["kind"] for o in items}) for overlay, items in built.items()}
    edge = {"Ingress", "HTTPRoute"} & set(kinds["deployments"])
    assert len(edge) == 1
    common = {"Namespace", "ServiceAccount", "PersistentVolumeClaim", "Deployment", "Service",
              "NetworkPolicy", "ServiceMonitor", "PrometheusRule", *edge}  # fmt: skip
    # The plain flavour's gateway Deployment (HPA, budget) reads routes from a ConfigMap;
    # on Ray the runtime's gateway actors serve, on the RayCluster's workers.
    assert set(kinds["deployments"]) == common | {
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"}  # fmt: skip
    assert set(kinds["kuberay"]) == common | {"RayCluster"}
    names = {o["metadata"]["name"] for o in built["deployments"] if o["kind"] == "Deployment"}
    assert names == {"ferryman-control", "ferryman-gateway", "ferryman-digits-v3",
                     "ferryman-digits-v4-onnx-int8", "ferryman-iris-v1"}  # fmt: skip
    assert [o["metadata"]["name"] for o in built["kuberay"] if o["kind"] == "Deployment"] == [
        "ferryman-control"]  # fmt: skip
    for items in built.values():
        assert {o["metadata"].get("namespace") for o in items if o["kind"] != "Namespace"} == {
            "ferryman"
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_pinned_limited_and_unprivileged(built: Built, overlay: str) -> None:
    found = [c for item in built[overlay] for c in containers(item)]
    assert len(found) >= 3
    for container in found:
        image = container["image"]
        assert image.startswith("registry.example.com/ferryman"), image
        assert image.endswith(":0.1.0"), image  # never untagged, never latest
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] != 0
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_wrong_option_in_a_manifest_would_fail_the_cli_check() -> None:
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    serve.make_context("ferryman serve", ["m:1", "--port", "8080"])
    with pytest.raises(Exception, match="No such option"):
        serve.make_context("ferryman serve", ["m:1", "--listen-port", "8080"])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_kinds_validate_strictly(built: Built, version: str) -> None:
    checked = 0
    for items in built.values():
        for item in items:
            if (item["apiVersion"], item["kind"]) in CRD_SCHEMAS:
                for template in _ray_pod_templates(item):  # the pods inside a RayCluster
                    kubernetes_validate.validate(template, version, strict=True)
                continue
            kubernetes_validate.validate(item, version, strict=True)
            checked += 1
    assert checked > 20


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The validator is strict: a field Kubernetes does not know fails (so the test can)."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"},
                 "spec": {"finalizerz": []}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(namespace, KUBERNETES_VERSIONS[0], strict=True)


def test_custom_resources_match_their_crd_schemas(built: Built) -> None:
    seen = set()
    for items in built.values():
        for item in items:
            key = (item["apiVersion"], item["kind"])
            if key in CRD_SCHEMAS:
                crd_validator(key).validate(item)
                seen.add(key)
    edge = ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert seen | {edge} == set(KUBERNETES_CRDS)


@pytest.mark.parametrize("key", list(CRD_SCHEMAS))
def test_crd_schemas_refuse_an_unknown_field(key: tuple[str, str]) -> None:
    """Unknown fields are refused, as a server with strict field validation does."""
    item = {"apiVersion": key[0], "kind": key[1], "metadata": {"name": "x"},
            "spec": {"notAField": 1}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError, match="notAField"):
        crd_validator(key).validate(item)


def test_every_vendored_schema_names_its_source_and_release() -> None:
    """Each schema file is in use and in crd_schemas/README.md's table, with its release."""
    readme = (SCHEMAS / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines()
            if line.startswith("| `")}  # fmt: skip
    assert sorted(rows) == sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert sorted(rows) == sorted(CRD_SCHEMAS.values())
    for (_, kind), file in CRD_SCHEMAS.items():
        assert "github.com/" in rows[file]
        assert f"| {CRD_RELEASES[kind]} " in rows[file], rows[file]


def test_commands_and_settings_in_the_manifests_are_the_clis(
    built: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each ``ferryman`` command line parses with the Typer app; each container's FERRYMAN_
    variables are settings, which the real loader reads from its environment."""
    cli = typer.main.get_command(app)
    subcommands = cli.commands  # type: ignore[attr-defined]  # the root is a group
    commands = set()
    for items in built.values():
        for item in items:
            for container in containers(item):
                settings = load_settings_from(container, monkeypatch, tmp_path)
                if "args" not in container:  # a Ray node: KubeRay runs ray start
                    continue
                name, *args = container["args"]
                command = subcommands.get(name)
                assert command is not None, f"no ferryman {name}"
                command.make_context(f"ferryman {name}", list(args))  # raises on a bad option
                commands.add(name)
                # Off loopback a server refuses plain HTTP unless its settings allow it.
                host = args[args.index("--host") + 1]
                check_tls_bind(host, False, settings.connections.insecure_http)
    assert commands == {"up", "gateway", "serve"}


def test_an_unknown_variable_would_fail_the_settings_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    known = {"env": [{"name": "FERRYMAN_GATEWAY__PORT", "value": "8000"}]}
    assert load_settings_from(known, monkeypatch, tmp_path).gateway.port == 8000
    for name in ("FERRYMAN_GATEWAY__REPLICATOKEN", "FERRYMAN_RAY_ADDRESS"):
        with pytest.raises(AssertionError, match="no setting"):
            load_settings_from({"env": [{"name": name, "value": "x"}]}, monkeypatch, tmp_path)
    nested = {"env": [{"name": "FERRYMAN_RAY__ADDRESS", "value": "ray://head:10001"},
                      {"name": "FERRYMAN_CONTROL__RUNTIME", "value": "kubernetes"}]}  # fmt: skip
    with pytest.raises(ValueError, match="runtime"):
        load_settings_from(nested, monkeypatch, tmp_path)


def test_control_plane_accepts_the_host_prometheus_scrapes_it_by(
    built: Built,
) -> None:
    """Prometheus (and the kubelet) name the pod's IP as Host; the API's allow-list has it."""
    control = next(o for o in built["deployments"] if o["metadata"]["name"] == "ferryman-control"
                   and o["kind"] == "Deployment")  # fmt: skip
    env = containers(control)[0]["env"]
    names = [e["name"] for e in env]
    allowed = json.loads(next(e["value"] for e in env
                              if e["name"] == "FERRYMAN_CONTROL__ALLOWED_HOSTS"))  # fmt: skip
    assert "$(POD_IP)" in allowed
    assert names.index("POD_IP") < names.index("FERRYMAN_CONTROL__ALLOWED_HOSTS")
    assert env[names.index("POD_IP")]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_gateway_and_replicas_answer_the_hosts_they_are_called_by(
    built: Built,
) -> None:
    """Every Ferryman server refuses a Host it does not know (DNS-rebinding guard): the
    gateway is called by the Ingress's host, the replicas by the names in the gateway's route
    table, Prometheus names each pod's IP, and the probes say localhost."""
    items = built["deployments"]
    routes = json.loads(next(o for o in items if o["kind"] == "ConfigMap")["data"]["routes.json"])
    backends = {url.split("://")[1]: url for route in routes["endpoints"].values()
                for variant in route["variants"] for url in variant["backends"]}  # fmt: skip
    pod_ip = POD_IP
    checked = 0
    for item in items:
        if item["kind"] != "Deployment" or item["metadata"]["name"] == "ferryman-control":
            continue
        (container,) = containers(item)
        section = "gateway" if container["args"][0] == "gateway" else "serving"
        variable = f"FERRYMAN_{section.upper()}__ALLOWED_HOSTS"
        env = {e["name"]: e.get("value") for e in container["env"]}
        names = [e["name"] for e in container["env"]]
        assert names.index("POD_IP") < names.index(variable)  # so that $(POD_IP) expands
        allowed = [h.replace("$(POD_IP)", pod_ip) for h in json.loads(env[variable])]
        port = container["ports"][0]["containerPort"]
        policy = HostPolicy.for_server("0.0.0.0", port, allowed)
        if section == "gateway":
            callers = ["ferryman.example.com", f"{pod_ip}:{port}"]
        else:
            service = item["metadata"]["name"]
            callers = [next(h for h in backends if h.startswith(f"{service}.")),
                       f"{pod_ip}:{port}"]  # fmt: skip
        for host in callers:
            assert policy.refusal([(b"host", host.encode())], "POST", "http") is None, host
        assert policy.refusal([(b"host", b"evil.example")], "GET", "http") is not None
        probes = ["startupProbe", "livenessProbe"]
        if section == "gateway":
            probes.append("readinessProbe")
        else:  # the token from the Secret: an exec probe (test_kubernetes_wiring.py)
            assert container["readinessProbe"]["exec"]["command"] == ready_command(port)
        for probe in probes:
            headers = container[probe]["httpGet"]["httpHeaders"]
            assert headers == [{"name": "Host", "value": "localhost"}]
        checked += 1
    assert checked == 4  # the gateway and three replicas


def test_gateway_routes_config_is_a_route_table_of_the_replica_services(
    built: Built,
) -> None:
    items = built["deployments"]
    routes = next(o for o in items if o["kind"] == "ConfigMap")["data"]["routes.json"]
    gateway = next(o for o in items if o["metadata"]["name"] == "ferryman-gateway"
                   and o["kind"] == "Deployment")  # fmt: skip
    variables = {e["name"]: e.get("value") for e in containers(gateway)[0]["env"]}
    allowed = json.loads(variables["FERRYMAN_GATEWAY__BACKEND_HOSTS"])
    table = RouteTable.from_json(routes, allowed_hosts=allowed)  # validates every backend
    services = {o["metadata"]["name"] for o in items if o["kind"] == "Service"}
    digits = table.endpoints["digits"]
    assert [(v.name, v.weight) for v in digits.variants] == [("v3", 90), ("v4-onnx-int8", 10)]
    for route in table.endpoints.values():
        for variant in route.variants:
            host = variant.backends[0].split("://")[1].split(".")[0]
            assert host in services


def test_replicas_follow_each_variants_scaling(built: Built) -> None:
    items = built["deployments"]
    scalers = {o["metadata"]["name"]: o["spec"] for o in items
               if o["kind"] == "HorizontalPodAutoscaler"}  # fmt: skip
    assert scalers["ferryman-digits-v3"]["minReplicas"] == 2
    assert scalers["ferryman-digits-v3"]["maxReplicas"] == 6
    assert scalers["ferryman-gateway"]["scaleTargetRef"]["name"] == "ferryman-gateway"
    assert "ferryman-iris-v1" not in scalers  # fixed replicas: no autoscaler
    iris = next(o for o in items if o["metadata"]["name"] == "ferryman-iris-v1"
                and o["kind"] == "Deployment")  # fmt: skip
    assert iris["spec"]["replicas"] == 3
    int8 = next(o for o in items if o["metadata"]["name"] == "ferryman-digits-v4-onnx-int8"
                and o["kind"] == "Deployment")  # fmt: skip
    container = containers(int8)[0]
    assert container["args"][:4] == ["serve", "digits:4", "--variant", "onnx-int8"]
    assert "/v2/health/ready" in container["readinessProbe"]["exec"]["command"][-1]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {"name": "FERRYMAN_SERVING__MAX_BATCH_SIZE", "value": "16"} in container["env"]
    # Artifacts on S3: the optional Secret's FERRYMAN_ARTIFACTS__URL and AWS_* keys, and a
    # cache the pod may write (the data claim is read-only to replicas).
    assert container["envFrom"] == [{"secretRef": {"name": "ferryman-s3", "optional": True}}]
    assert {"name": "FERRYMAN_ARTIFACTS__CACHE_DIR", "value": "/tmp/artifact-cache"} in (
        container["env"]
    )


def test_replicas_admit_only_the_gateway_the_control_plane_and_prometheus(
    built: Built,
) -> None:
    policy = next(o for o in built["deployments"] if o["kind"] == "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "replica"
    (rule,) = policy["spec"]["ingress"]
    callers = [p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
               or p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for p in rule["from"]]  # fmt: skip
    assert callers == ["gateway", "control-plane", "monitoring"]
    component = "app.kubernetes.io/component"
    replica_pods = [o for o in built["deployments"] if o["kind"] == "Deployment"
                    and o["metadata"]["labels"][component] == "replica"]  # fmt: skip
    for deployment in replica_pods:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "replica"


def test_prometheus_rule_holds_the_exported_alert_rules(
    built: Built,
) -> None:
    rule = next(o for o in built["deployments"] if o["kind"] == "PrometheusRule")
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert alerts == {f"Ferryman{''.join(p.capitalize() for p in r.name.split('-'))}"
                      for r in DEFAULT_RULES if r.enabled}  # fmt: skip


def test_rendering_is_a_pure_function_of_its_inputs() -> None:
    spec = ClusterSpec(image="ferryman@sha256:" + "a" * 64)
    first = render(spec, DEPLOYMENTS, DEFAULT_RULES)
    assert render(spec, DEPLOYMENTS, DEFAULT_RULES) == first
    assert 'digest: "sha256:' in first["base/kustomization.yaml"]
    other = render(ClusterSpec(image=spec.image, namespace="ml"), DEPLOYMENTS, DEFAULT_RULES)
    assert "ferryman-digits-v3.ml.svc:8080" in other["overlays/deployments/replicas.yaml"]


def test_rendering_matches_the_golden_files() -> None:
    """Both flavours (overlays/deployments, overlays/kuberay), the base and both edges, as
    reviewed in golden/kubernetes/ (rewrite with FERRYMAN_UPDATE_GOLDEN=1)."""
    check_golden("kubernetes", render(ClusterSpec(image="registry.example.com/ferryman:0.1.0"),
                                      DEPLOYMENTS, DEFAULT_RULES))  # fmt: skip


@pytest.mark.parametrize("image", ["ferryman", "ferryman:latest", "reg:5000/ferryman", "x@md5:1"])
def test_an_image_without_a_pinned_tag_is_refused(image: str) -> None:
    with pytest.raises(InvalidInput, match=r"tag|digest"):
        split_image(image)


@needs_kubectl
def test_an_empty_registry_renders_an_example_endpoint(tmp_path: Path) -> None:
    out = write(tmp_path, ClusterSpec(image="ferryman:0.1.0"), ())
    items = kustomize(out / "overlays" / "deployments")
    assert "ferryman-example-v1" in {o["metadata"]["name"] for o in items}


def _ray_pod_templates(item: dict[str, Any]) -> list[dict[str, Any]]:
    if item["kind"] != "RayCluster":
        return []
    return [{"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "ray"},
             "template": template} for template in pod_templates(item)]  # fmt: skip
