"""For teams with their own Grafana: a dashboard over the metrics Ferryman exposes.

``ferryman export grafana DIR`` writes ``ferryman-dashboard.json``: a Prometheus data
source chosen on import, an ``endpoint`` variable, and one time-series panel each for the
traffic split, QPS, latency, errors, replicas, drift, quality and resources per variant.
The expressions are those of the Prometheus alert rules (``prometheus.series_expr``), so
the dashboard and the alerts read the same numbers.
"""

from __future__ import annotations

from typing import Any

from ferryman.control.exports.prometheus import LATENCY_BUCKETS, RATE_WINDOW, REQUESTS
from ferryman.version import __version__

DASHBOARD_FILE = "ferryman-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ONLY = '{endpoint=~"$endpoint"}'
BY_VARIANT = "sum by (endpoint, variant)"
LEGEND = "{{endpoint}}/{{variant}}"

Queries = tuple[tuple[str, str], ...]
"""(PromQL, legend) of each line of a panel."""

_PANELS: tuple[tuple[str, str, Queries], ...] = (
    ("Traffic split", "percent", (
        (f"ferryman_variant_weight{ONLY}", "{{endpoint}}/{{variant}} weight"),
        (f"100 * {BY_VARIANT} (rate({REQUESTS}{ONLY}[{RATE_WINDOW}])) / ignoring(variant) "
         f"group_left sum by (endpoint) (rate({REQUESTS}{ONLY}[{RATE_WINDOW}]))",
         "{{endpoint}}/{{variant}} observed"),
    )),
    ("QPS", "reqps", (
        (f"{BY_VARIANT} (rate({REQUESTS}{ONLY}[{RATE_WINDOW}]))", LEGEND),
    )),
    ("Latency (p50, p99)", "s", (
        (f"histogram_quantile(0.5, sum by (endpoint, variant, le) "
         f"(rate({LATENCY_BUCKETS}{ONLY}[{RATE_WINDOW}])))", "{{endpoint}}/{{variant}} p50"),
        (f"histogram_quantile(0.99, sum by (endpoint, variant, le) "
         f"(rate({LATENCY_BUCKETS}{ONLY}[{RATE_WINDOW}])))", "{{endpoint}}/{{variant}} p99"),
    )),
    ("Errors (5xx share)", "percentunit", (
        (f'{BY_VARIANT} (rate({REQUESTS}{{code="5xx",endpoint=~"$endpoint"}}[{RATE_WINDOW}])) '
         f"/ {BY_VARIANT} (rate({REQUESTS}{ONLY}[{RATE_WINDOW}]))", LEGEND),
    )),
    ("Replicas", "short", (
        (f"ferryman_variant_replicas{ONLY}", "{{endpoint}}/{{variant}} ready"),
        (f"ferryman_variant_replicas_desired{ONLY}", "{{endpoint}}/{{variant}} desired"),
        (f"ferryman_variant_restarts_10m{ONLY}", "{{endpoint}}/{{variant}} restarts (10 m)"),
    )),
    ("Drift", "short", (
        (f"ferryman_variant_input_drift_psi{ONLY}", "{{endpoint}}/{{variant}} input PSI"),
        (f"ferryman_variant_prediction_drift{ONLY}", "{{endpoint}}/{{variant}} predictions JS"),
    )),
    ("Quality from feedback", "percentunit", (
        (f"ferryman_variant_accuracy{ONLY}", "{{endpoint}}/{{variant}} accuracy"),
        (f"ferryman_variant_f1{ONLY}", "{{endpoint}}/{{variant}} F1"),
        (f"ferryman_variant_thumbs_up_rate{ONLY}", "{{endpoint}}/{{variant}} thumbs up"),
    )),
    ("CPU (% of one core)", "percent", ((f"ferryman_variant_cpu_pct{ONLY}", LEGEND),)),
    ("Memory (RSS)", "bytes", ((f"ferryman_variant_rss_bytes{ONLY}", LEGEND),)),
    ("Mean batch size", "short", ((f"ferryman_variant_batch_size{ONLY}", LEGEND),)),
)  # fmt: skip
PANEL_WIDTH = 12
PANEL_HEIGHT = 8


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana imports it (schema 39)."""
    return {
        "__inputs": [],
        "title": "Ferryman",
        "uid": "ferryman",
        "description": f"Endpoints served by Ferryman {__version__}: traffic, latency, "
        "errors, replicas, drift and quality per variant.",
        "tags": ["ferryman", "mlops"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [_datasource_variable(), _endpoint_variable()]},
        "panels": [_panel(index, *spec) for index, spec in enumerate(_PANELS)],
    }


def _panel(
    index: int, title: str, unit: str, queries: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {
            "x": (index % 2) * PANEL_WIDTH,
            "y": (index // 2) * PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "h": PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for n, (expr, legend) in enumerate(queries)
        ],
    }


def _datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0}  # fmt: skip


def _endpoint_variable() -> dict[str, Any]:
    return {
        "name": "endpoint",
        "label": "Endpoint",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": f"label_values({REQUESTS}, endpoint)", "refId": "endpoints"},
        "definition": f"label_values({REQUESTS}, endpoint)",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "hide": 0,
    }
