"""Traffic per variant parsed from the gateway's real metrics exposition."""

from __future__ import annotations

import math

import pytest

from ferryman.control.metrics.traffic import Traffic, histogram_quantile, traffic_by_variant, window
from ferryman.gateway.metrics import GatewayMetrics


def test_totals_and_windows_from_the_gateway_metrics() -> None:
    metrics = GatewayMetrics()
    for _ in range(90):
        metrics.answered("digits", "v1", 200, 0.004)
    for _ in range(10):
        metrics.answered("digits", "v2", 503, 0.3)
    earlier = traffic_by_variant(metrics.exposition().decode())
    for _ in range(100):
        metrics.answered("digits", "v2", 200, 0.02)
    later = traffic_by_variant(metrics.exposition().decode())

    assert later[("digits", "v1")].requests == 90
    assert later[("digits", "v1")].error_rate == 0
    assert later[("digits", "v2")].errors == 10
    recent = window(later, earlier)
    assert recent[("digits", "v2")].requests == 100
    assert recent[("digits", "v2")].errors == 0
    assert recent[("digits", "v1")].requests == 0
    p99 = recent[("digits", "v2")].quantile_s(0.99)
    assert p99 is not None
    assert 0.01 < p99 <= 0.025  # all in the (10 ms, 25 ms] bucket
    assert later[("digits", "v2")].quantile_s(0.99) == pytest.approx(0.5, abs=0.25)


def test_4xx_and_5xx_answers_are_counted_apart() -> None:
    """A refused request (400) is no server error, but it is no success for the client."""
    metrics = GatewayMetrics()
    for status in (200, 200, 400, 404, 503):
        metrics.answered("digits", "v1", status, 0.004)
    before = traffic_by_variant(metrics.exposition().decode())
    metrics.answered("digits", "v1", 400, 0.004)
    after = traffic_by_variant(metrics.exposition().decode())
    seen = before[("digits", "v1")]
    assert (seen.requests, seen.errors, seen.client_errors) == (5, 1, 2)
    assert seen.client_error_rate == pytest.approx(0.4)
    assert window(after, before)[("digits", "v1")].client_errors == 1


def test_a_restarted_gateway_starts_its_window_afresh() -> None:
    before = {("e", "v"): Traffic(100, 5, {0.1: 100, math.inf: 100})}
    after = {("e", "v"): Traffic(7, 0, {0.1: 7, math.inf: 7})}
    assert window(after, before)[("e", "v")].requests == 7


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {0.1: 50, 0.2: 100, math.inf: 100}, 0.1),
        (0.99, {0.1: 0, 0.2: 100, math.inf: 100}, 0.199),
        (0.99, {0.1: 98, math.inf: 100}, 0.1),
        (0.5, {0.1: 0, math.inf: 0}, None),
        (0.5, {}, None),
    ],
)
def test_histogram_quantile(q: float, buckets: dict[float, float], expected: float | None) -> None:
    result = histogram_quantile(q, buckets)
    assert result == (None if expected is None else pytest.approx(expected))
