"""The control plane's own Prometheus metrics: the monitor's newest sample as gauges.

Series only Ferryman computes — weights, replicas, accuracy and F1 from feedback, the
thumbs-up rate of rated completions, input and prediction drift, restarts — become
``ferryman_variant_<series>{endpoint, variant}``, so a team's own Prometheus can alert on
them (``ferryman export prometheus``). Samples older than ``max_age_s`` are left out rather
than repeated as if they were current.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ferryman.registry import SERIES, AlertLevel, AlertRecord, MetricSample
from ferryman.types import Slot

PREFIX = "ferryman_variant_"
ALERTS_FIRING = "ferryman_alerts_firing"


def metric_name(series: str) -> str:
    """The gauge a series is exposed as: ``p99_ms`` → ``ferryman_variant_p99_ms``."""
    return PREFIX + series


class _SampleCollector(Collector):
    def __init__(self, samples: Sequence[MetricSample], firing: Sequence[AlertRecord]) -> None:
        self._samples = samples
        self._firing = firing

    def collect(self) -> Iterator[Metric]:
        for series, meaning in SERIES.items():
            family = GaugeMetricFamily(metric_name(series), meaning, labels=["endpoint", "variant"])
            for sample in self._samples:
                if series in sample.values:
                    family.add_metric([sample.endpoint, sample.variant], sample.values[series])
            yield family
        alerts = GaugeMetricFamily(ALERTS_FIRING, "Alerts firing now, by level.", labels=["level"])
        for level in AlertLevel:
            alerts.add_metric([level.value], sum(1 for a in self._firing if a.level is level))
        yield alerts


def exposition(
    latest: Mapping[Slot, MetricSample],
    firing: Sequence[AlertRecord],
    now_s: float,
    max_age_s: float,
) -> bytes:
    """The Prometheus text of the newest samples (those younger than ``max_age_s``)."""
    fresh = [s for _, s in sorted(latest.items()) if now_s - s.time_s <= max_age_s]
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_SampleCollector(fresh, firing))
    return generate_latest(registry)
