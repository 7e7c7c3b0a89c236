"""The gateway's traffic per variant, read from a Prometheus server instead of the gateway.

Teams that already run Prometheus (``ferryman export prometheus`` writes its scrape config)
may point rollout analysis at it: ``control.prometheus_url``. Three instant queries sum the
gateway's own counters by (endpoint, variant) — requests by status code, latency buckets by
bound, shadow copies by outcome — into the same :class:`~ferryman.control.metrics.traffic.Traffic`
totals a direct scrape gives, so windows, gates and verdicts are computed exactly as they
are without it. A Prometheus that cannot be reached, or answers anything but success, is
"metrics unavailable": the rollout holds, never promotes (RELIABILITY Z5).

The URL comes from settings only; nothing from a request is ever added to it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import httpx

from ferryman.control.metrics.traffic import LATENCY, REQUESTS, SHADOW, Traffic
from ferryman.types import Slot

logger = logging.getLogger(__name__)

QUERIES = {
    "requests": f"sum by (endpoint, variant, code) ({REQUESTS})",
    "buckets": f"sum by (endpoint, variant, le) ({LATENCY})",
    "shadow": f"sum by (endpoint, variant, outcome) ({SHADOW})",
}
Labelled = Iterator[tuple[dict[str, str], float]]


class PrometheusTraffic:
    """A traffic source (``() -> totals or None``) backed by Prometheus' query API."""

    def __init__(self, base_url: str, http: httpx.Client, timeout_s: float = 5.0) -> None:
        self._url = base_url.rstrip("/") + "/api/v1/query"
        self._http = http
        self._timeout_s = timeout_s

    def __call__(self) -> dict[Slot, Traffic] | None:
        try:
            answers = {name: list(self._query(expr)) for name, expr in QUERIES.items()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning("Prometheus query failed (%s): rollout analysis has no data", exc)
            return None
        return totals(answers["requests"], answers["buckets"], answers["shadow"])

    def _query(self, expr: str) -> Labelled:
        response = self._http.get(self._url, params={"query": expr}, timeout=self._timeout_s)
        answer = response.raise_for_status().json()
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise ValueError(f"Prometheus did not answer {expr!r} with success")
        if answer["data"]["resultType"] != "vector":
            raise ValueError(f"Prometheus answered {expr!r} with no instant vector")
        for series in answer["data"]["result"]:
            yield dict(series["metric"]), float(series["value"][1])


def totals(
    requests: list[tuple[dict[str, str], float]],
    buckets: list[tuple[dict[str, str], float]],
    shadow: list[tuple[dict[str, str], float]],
) -> dict[Slot, Traffic]:
    """Traffic per (endpoint, variant) from the three queries' labelled values."""
    found: dict[Slot, dict[str, float]] = {}
    bounds: dict[Slot, dict[float, float]] = {}
    outcomes: dict[Slot, dict[str, float]] = {}
    for labels, value in requests:
        counts = found.setdefault(_key(labels), {"requests": 0.0, "errors": 0.0, "4xx": 0.0})
        counts["requests"] += value
        code = labels.get("code", "")
        if code.startswith("5"):
            counts["errors"] += value
        elif code.startswith("4"):
            counts["4xx"] += value
    for labels, value in buckets:
        bound = math.inf if labels.get("le") in ("+Inf", "Inf") else float(labels["le"])
        bounds.setdefault(_key(labels), {})[bound] = value
    for labels, value in shadow:
        outcomes.setdefault(_key(labels), {})[labels.get("outcome", "")] = value
    return {
        key: Traffic(
            found.get(key, {}).get("requests", 0.0),
            found.get(key, {}).get("errors", 0.0),
            bounds.get(key, {}),
            outcomes.get(key, {}),
            found.get(key, {}).get("4xx", 0.0),
        )
        for key in found.keys() | bounds.keys() | outcomes.keys()
    }


def _key(labels: dict[str, str]) -> Slot:
    return labels.get("endpoint", ""), labels.get("variant", "")
