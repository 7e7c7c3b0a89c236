"""For teams with their own Prometheus: a scrape config, alert rules and replica targets.

``ferryman export prometheus DIR`` writes ``prometheus.yml`` — three jobs: the gateway
(requests, errors, latency per endpoint and variant), the replicas (named in a file_sd
JSON the control loop keeps current, labelled with their endpoint and variant) and the
control plane's ``/metrics`` (accuracy, drift, replicas, restarts; with the API token) —
and ``ferryman-rules.yml``, the alert rules in force (defaults and users' own) in PromQL
over those metrics. Prometheus reads YAML, of which JSON strings are a subset: scalars are
written as JSON, so no name or path needs escaping rules of its own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferryman.control.monitor.exposition import metric_name
from ferryman.gateway.routes import RouteTable
from ferryman.registry import AlertRule

TARGETS_FILE = "prometheus-targets.json"
RULES_FILE = "ferryman-rules.yml"
CONFIG_FILE = "prometheus.yml"
RATE_WINDOW = "1m"

REQUESTS = "ferryman_gateway_requests_total"
LATENCY_BUCKETS = "ferryman_gateway_request_duration_seconds_bucket"


@dataclass(frozen=True)
class ScrapeTargets:
    """Where Ferryman listens, and the files Prometheus reads beside its config."""

    gateway: str
    """host:port of the gateway."""
    control: str
    """host:port of the control plane's API."""
    targets_file: Path
    """The file_sd JSON of replicas the control loop writes (absolute)."""
    token_file: Path | None
    """The API token (absolute); None when the API runs without auth."""
    control_ca_file: Path | None = None
    """The certificate the API serves, when it serves HTTPS."""
    fleet_secret_file: Path | None = None
    """The fleet's secret (absolute), which replicas ask of every scrape."""
    scrape_interval_s: float = 15.0


def scrape_config(targets: ScrapeTargets) -> str:
    """``prometheus.yml`` scraping the gateway, the replicas and the control plane."""
    interval = _duration(targets.scrape_interval_s)
    control: dict[str, Any] = {
        "job_name": "ferryman-control",
        "scheme": "https" if targets.control_ca_file else "http",
        "static_configs": [{"targets": [targets.control]}],
    }
    if targets.token_file is not None:
        control["authorization"] = {"type": "Bearer", "credentials_file": str(targets.token_file)}
    if targets.control_ca_file is not None:
        control["tls_config"] = {"ca_file": str(targets.control_ca_file)}
    replicas: dict[str, Any] = {
        "job_name": "ferryman-replicas",
        "file_sd_configs": [{"files": [str(targets.targets_file)], "refresh_interval": interval}],
    }
    if targets.fleet_secret_file is not None:
        secret = str(targets.fleet_secret_file)
        replicas["authorization"] = {"type": "Bearer", "credentials_file": secret}
    document = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [RULES_FILE],
        "scrape_configs": [
            {"job_name": "ferryman-gateway", "static_configs": [{"targets": [targets.gateway]}]},
            replicas,
            control,
        ],
    }
    return "# Written by `ferryman export prometheus`.\n" + to_yaml(document)


def alert_rules(rules: Sequence[AlertRule]) -> str:
    """``ferryman-rules.yml``: each enabled rule as a Prometheus alerting rule."""
    document = {"groups": rule_groups(rules)}
    return "# Written by `ferryman export prometheus`: the alert rules in force.\n" + to_yaml(
        document
    )


def rule_groups(rules: Sequence[AlertRule]) -> list[dict[str, Any]]:
    """The rule groups of a rules file (a PrometheusRule's ``spec.groups`` too)."""
    entries = []
    for rule in rules:
        if not rule.enabled:
            continue
        bound = f"{rule.comparison} {rule.threshold:g}"
        entry: dict[str, Any] = {
            "alert": alert_name(rule.name),
            "expr": f"{series_expr(rule.series, rule.endpoint)} {bound}",
        }
        if rule.for_s:
            entry["for"] = _duration(rule.for_s)
        entry["labels"] = {"severity": rule.level.value, "rule": rule.name}
        entry["annotations"] = {
            "summary": rule.description or f"{rule.series} {bound}",
            "description": "{{ $labels.endpoint }}/{{ $labels.variant }}: "
            f'{rule.series} is {{{{ printf "%.4g" $value }}}} ({bound})',
        }
        entries.append(entry)
    return [{"name": "ferryman", "rules": entries}]


def series_expr(series: str, endpoint: str | None = None) -> str:
    """PromQL of one history series per (endpoint, variant).

    Traffic series come from the gateway's counters and histograms (over a 1 m rate);
    the rest are the control plane's ``ferryman_variant_<series>`` gauges.
    """
    only = f'{{endpoint="{endpoint}"}}' if endpoint else ""
    errors = f'{{code="5xx",endpoint="{endpoint}"}}' if endpoint else '{code="5xx"}'
    by = "sum by (endpoint, variant)"
    if series == "qps":
        return f"{by} (rate({REQUESTS}{only}[{RATE_WINDOW}]))"
    if series == "error_rate":
        return (
            f"({by} (rate({REQUESTS}{errors}[{RATE_WINDOW}])) / "
            f"{by} (rate({REQUESTS}{only}[{RATE_WINDOW}])))"
        )
    if series in {"p50_ms", "p99_ms"}:
        q = "0.5" if series == "p50_ms" else "0.99"
        buckets = f"sum by (endpoint, variant, le) (rate({LATENCY_BUCKETS}{only}[{RATE_WINDOW}]))"
        return f"(histogram_quantile({q}, {buckets}) * 1000)"
    return f"{metric_name(series)}{only}"


def alert_name(rule: str) -> str:
    """``p99-latency`` → ``FerrymanP99Latency``."""
    return "Ferryman" + "".join(part.capitalize() for part in re.split(r"[-_]", rule) if part)


def targets_document(table: RouteTable | None) -> list[dict[str, Any]]:
    """file_sd groups: each variant's ready replicas, labelled with endpoint and variant.

    The replicas' own ``variant`` label (the variant kind) becomes ``exported_variant``
    when scraped, so ``variant`` means the same (the route's variant) on every job.
    """
    groups = []
    for endpoint, route in sorted(table.endpoints.items()) if table else ():
        for variant in route.variants:
            if variant.backends:
                hosts = [url.split("://", 1)[-1].rstrip("/") for url in variant.backends]
                labels = {"endpoint": endpoint, "variant": variant.name}
                groups.append({"targets": hosts, "labels": labels})
    return groups


def write_targets(path: Path, table: RouteTable | None) -> bool:
    """Write the replicas' file_sd JSON when it changed (atomically); True if written."""
    text = json.dumps(targets_document(table), indent=1) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return True


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists and scalars (scalars as JSON, which YAML reads)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2 :]}")
            else:
                lines.append(f"{pad}- {json.dumps(item)}\n")
        return "".join(lines)
    return f"{pad}{json.dumps(value)}\n"


def _duration(seconds: float) -> str:
    """Prometheus duration: whole minutes or seconds, or milliseconds below a second."""
    if seconds >= 60 and float(seconds / 60).is_integer():
        return f"{int(seconds // 60)}m"
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"
