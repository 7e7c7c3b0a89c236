"""``ferryman export prometheus|grafana|kubernetes|kserve DIR``: assets for teams with their own
stack."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.config import Settings
from ferryman.control.api.security import TOKEN_FILE, load_or_create_token
from ferryman.control.exports import kserve as kserve_export
from ferryman.control.exports.grafana import DASHBOARD_FILE, dashboard
from ferryman.control.exports.kubernetes import PRIVATE_NETWORKS, ClusterSpec, Route, render
from ferryman.control.exports.prometheus import (
    CONFIG_FILE,
    RULES_FILE,
    TARGETS_FILE,
    ScrapeTargets,
    alert_rules,
    scrape_config,
    write_targets,
)
from ferryman.control.monitor.alerts import effective_rules
from ferryman.errors import Conflict, InvalidInput, NotFound
from ferryman.fleet_secret import FLEET_SECRET_FILE, load_or_create_fleet_secret
from ferryman.names import validate_name
from ferryman.registry import Registry, RolloutStatus, VariantSpec
from ferryman.version import __version__

export_app = typer.Typer(
    rich_markup_mode=None, help="Write Prometheus, Grafana and Kubernetes assets for your stack."
)

Directory = Annotated[Path, typer.Argument(help="Directory to write into (created if needed).")]


@export_app.command("prometheus")
def prometheus(
    ctx: typer.Context,
    directory: Directory,
    scrape_interval_s: Annotated[
        float, typer.Option("--scrape-interval", help="Seconds between scrapes.")
    ] = 15.0,
) -> None:
    """prometheus.yml (gateway, replicas, control plane) and the alert rules in force."""
    if not 0.1 <= scrape_interval_s <= 3600:
        raise InvalidInput(f"--scrape-interval {scrape_interval_s:g} is not in 0.1..3600 s")
    state = cli_context(ctx)
    rules = effective_rules(state.registry().alerts.rules())
    targets = scrape_targets(state.settings, scrape_interval_s)
    # Prometheus refuses a config whose token file is missing: make sure both files exist
    # (the control plane creates the same token on its first start, and keeps targets).
    if targets.token_file is not None:
        load_or_create_token(state.settings.data_dir)
    load_or_create_fleet_secret(state.settings.data_dir)  # replicas ask for it
    if not targets.targets_file.exists():
        targets.targets_file.parent.mkdir(parents=True, exist_ok=True)
        write_targets(targets.targets_file, None)  # no replica yet; the loop keeps it current
    written = _write(directory, {
        CONFIG_FILE: scrape_config(targets),
        RULES_FILE: alert_rules(rules),
    })  # fmt: skip
    console.print(f"Wrote {', '.join(written)}; check with: promtool check config "
                  f"{directory / CONFIG_FILE}", soft_wrap=True)  # fmt: skip


@export_app.command("grafana")
def grafana(directory: Directory) -> None:
    """A dashboard JSON: traffic split, QPS, latency, errors, replicas, drift, quality."""
    written = _write(directory, {DASHBOARD_FILE: json.dumps(dashboard(), indent=2) + "\n"})
    console.print(f"Wrote {written[0]}; import it in Grafana, pick your Prometheus",
                  soft_wrap=True)  # fmt: skip


@export_app.command("kubernetes")
def kubernetes(
    ctx: typer.Context,
    directory: Directory,
    image: Annotated[
        str,
        typer.Option(help="Image with a tag or digest, e.g. registry.example.com/ferryman:0.1.0."),
    ] = f"ferryman:{__version__}",
    namespace: Annotated[str, typer.Option(help="Namespace of every object.")] = "ferryman",
    host: Annotated[
        str, typer.Option(help="Host name of the Ingress/HTTPRoute.")
    ] = "ferryman.example.com",
    route: Annotated[Route, typer.Option(help="Edge object: ingress or httproute.")] = "ingress",
    pod_network: Annotated[
        list[str] | None,
        typer.Option(
            help="The cluster's pod network (CIDR; repeat for several), where the KubeRay "
            "flavour's gateways accept replicas' addresses [default: 10.0.0.0/8, "
            "172.16.0.0/12, 192.168.0.0/16]."
        ),
    ] = None,
) -> None:
    """A kustomize base and overlays (deployments, kuberay): kubectl apply -k DIR/overlays/…"""
    state = cli_context(ctx)
    registry = state.registry()
    deployments = [record.spec for record in registry.deployments.list()]
    rules = effective_rules(registry.alerts.rules())
    spec = ClusterSpec(image=image, namespace=validate_name(namespace, "namespace"),
                       host=host, route=route,
                       pod_networks=tuple(pod_network or PRIVATE_NETWORKS))  # fmt: skip
    files = render(spec, deployments, rules)
    for folder in sorted({Path(name).parent for name in files}):
        in_folder = {Path(name).name: text for name, text in files.items()
                     if Path(name).parent == folder}  # fmt: skip
        _write(directory / folder, in_folder)
    console.print(f"Wrote {len(files)} files under {directory}; apply with: kubectl apply -k "
                  f"{directory / 'overlays' / 'deployments'}", soft_wrap=True)  # fmt: skip


@export_app.command("kserve")
def kserve(
    ctx: typer.Context,
    directory: Directory,
    endpoint: Annotated[str, typer.Option(help="Endpoint whose deployment KServe serves.")],
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="Where KServe fetches the model repository from (s3://, gs://, pvc://…); you "
            "upload DIR/model-repository there. Default with artifacts on S3: "
            "ARTIFACTS_URL/kserve/ENDPOINT, which this command fills."
        ),
    ] = None,
    namespace: Annotated[str, typer.Option(help="Namespace of the objects.")] = "ferryman",
    runtime_version: Annotated[
        str, typer.Option(help="Tag of the Triton image of KServe's runtime.")
    ] = kserve_export.TRITON_VERSION,
) -> None:
    """An InferenceService (V2, ONNX) of the endpoint; a running rollout is its canary."""
    state = cli_context(ctx)
    registry = state.registry()
    name = validate_name(endpoint, "endpoint")
    try:
        deployment = registry.deployments.get(name).spec
    except NotFound:
        raise NotFound(f"endpoint {name!r} has no deployment, so there is nothing to serve; "
                       f"deploy it first: ferryman deploy MODEL:VERSION --endpoint {name}"
                       ) from None  # fmt: skip
    running = (RolloutStatus.PROGRESSING, RolloutStatus.PAUSED)
    rollouts = [r for r in registry.rollouts.list(name, active_only=True) if r.status in running]
    candidate = rollouts[-1].candidate if rollouts else None
    artifacts_url = state.settings.artifacts.url
    if storage_uri is None and artifacts_url is None:
        raise InvalidInput(
            "artifacts are on this machine's disk, which KServe cannot reach: its storage "
            "initializer downloads the model from a storage URI inside the cluster. Pass "
            "--storage-uri s3://BUCKET/PATH (or gs://…, pvc://CLAIM/PATH) and upload "
            f"{directory / kserve_export.REPOSITORY} there after this command writes it"
        )
    uploads = storage_uri is None
    storage = storage_uri or f"{str(artifacts_url).rstrip('/')}/kserve/{name}"
    spec = kserve_export.KServeSpec(storage, validate_name(namespace, "namespace"),
                                    runtime_version)  # fmt: skip
    result = kserve_export.render(spec, deployment, candidate)
    digests = {path: _onnx_digest(registry, variant) for path, variant in result.models.items()}
    for folder in sorted({Path(name).parent for name in result.files}):
        in_folder = {Path(path).name: text for path, text in result.files.items()
                     if Path(path).parent == folder}  # fmt: skip
        _write(directory / folder, in_folder)
    for path, digest in digests.items():
        try:
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(f"cannot write into {directory}: {exc.strerror}") from None
        registry.store.copy_to(digest, directory / path)  # verified against its digest
    for note in result.notes:
        console.print(f"Note: {note}", soft_wrap=True)
    repository = directory / kserve_export.REPOSITORY
    if uploads:
        prefix = f"kserve/{name}/"
        publish = getattr(registry.store, "publish")  # noqa: B009 - only the S3 store has it
        where = publish(
            {prefix + _in_repository(p): t for p, t in result.files.items()
             if p.startswith(kserve_export.REPOSITORY)},
            {prefix + _in_repository(p): d for p, d in digests.items()},
        )  # fmt: skip
        console.print(f"Copied the model repository to {where}/{prefix}", soft_wrap=True)
    else:
        console.print(f"Upload {repository}/ to {storage_uri} (e.g. aws s3 sync {repository} "
                      f"{storage_uri}); KServe fetches it from there", soft_wrap=True)  # fmt: skip
    console.print(f"Wrote {directory}; apply with: kubectl apply -k {directory}", soft_wrap=True)


def _onnx_digest(registry: Registry, variant: VariantSpec) -> str:
    """The digest of ``variant``'s ONNX file (its version's own, or a passed variant's)."""
    version = registry.get_version(variant.model, variant.version)
    if variant.kind is None:
        if version.format != "onnx":
            raise InvalidInput(f"{variant.model} v{variant.version} is {version.format}, not an "
                               "ONNX graph; KServe's ONNX runtime cannot serve it")  # fmt: skip
        return version.digest
    found = {v.kind: v for v in registry.list_variants(variant.model, variant.version)}
    chosen = found.get(variant.kind)
    if chosen is None or chosen.status.value != "passed":
        raise Conflict(f"variant {variant.kind} of {variant.model} v{variant.version} is not a "
                       "passed variant; only those are served")  # fmt: skip
    return chosen.digest


def _in_repository(path: str) -> str:
    return path.removeprefix(kserve_export.REPOSITORY + "/")


def scrape_targets(settings: Settings, scrape_interval_s: float) -> ScrapeTargets:
    control = settings.control
    data_dir = settings.data_dir.absolute()
    return ScrapeTargets(
        gateway=_address(settings.gateway.host, settings.gateway.port),
        control=_address(control.host, control.port),
        targets_file=data_dir / TARGETS_FILE,
        token_file=data_dir / TOKEN_FILE if control.auth_required else None,
        control_ca_file=control.tls_cert_file.absolute() if control.tls_cert_file else None,
        fleet_secret_file=data_dir / FLEET_SECRET_FILE,
        scrape_interval_s=scrape_interval_s,
    )


def _address(host: str, port: int) -> str:
    """host:port as Prometheus dials it (a wildcard bind is reached on loopback)."""
    if host in {"0.0.0.0", ""}:  # noqa: S104 - reading a bind address, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _write(directory: Path, files: dict[str, str]) -> list[str]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in files.items():
            temporary = directory / f".{name}.tmp"
            temporary.write_text(text)
            os.replace(temporary, directory / name)
            written.append(str(directory / name))
    except OSError as exc:
        raise InvalidInput(f"cannot write into {directory}: {exc.strerror}") from None
    return written
