"""The token-latency gates of language-model canaries (time to first token, between tokens),
on the gateway's histograms."""

from __future__ import annotations

import math

import pytest

from ferryman.control.metrics.traffic import Traffic, traffic_by_variant, window
from ferryman.control.rollouts.gates import Gates, Verdict, analyse
from ferryman.gateway.metrics import GatewayMetrics

FAST = {0.05: 50.0, 0.25: 50.0, math.inf: 50.0}  # every stream's first token within 50 ms
SLOW = {0.05: 30.0, 0.25: 45.0, 1.0: 50.0, math.inf: 50.0}  # p99 between 250 ms and 1 s


def _traffic(first_token: dict[float, float]) -> Traffic:
    return Traffic(50, 0, {0.1: 50, math.inf: 50}, first_token=first_token)


@pytest.mark.parametrize(
    ("limit_ms", "first_token", "verdict"),
    [(200, FAST, Verdict.PASS), (200, SLOW, Verdict.FAIL), (None, SLOW, Verdict.PASS),
     (200, {}, Verdict.PASS)],
    ids=["fast", "slow", "not-judged", "no-streams"],
)  # fmt: skip
def test_a_slow_first_token_fails_the_window(
    limit_ms: float | None, first_token: dict[float, float], verdict: Verdict
) -> None:
    gates = Gates(max_ttft_p99_ms=limit_ms, min_requests=10)
    analysis = analyse(gates, _traffic(first_token))
    assert analysis.verdict is verdict
    if verdict is Verdict.FAIL:
        assert analysis.reasons[0].startswith("time to first token p99 9")
        assert analysis.reasons[0].endswith("ms > 200 ms")
    if first_token:
        assert analysis.figures()["ttft_p99_ms"] is not None


def test_the_gateway_histogram_reaches_the_window_per_variant() -> None:
    metrics = GatewayMetrics()
    before = traffic_by_variant(metrics.exposition().decode())
    metrics.answered("lm", "v2", 200, 0.4)
    metrics.first_token.labels("lm", "v2").observe(0.3)
    metrics.inter_token.labels("lm", "v2").observe(0.02)
    later = traffic_by_variant(metrics.exposition().decode())
    seen = window(later, before)[("lm", "v2")]
    assert seen.first_token[math.inf] == 1
    quantile = seen.first_token_quantile_s(0.99)
    assert quantile is not None
    assert 0.25 < quantile <= 0.5
    gap = seen.inter_token_quantile_s(0.99)
    assert gap is not None
    assert 0.01 < gap <= 0.025


@pytest.mark.parametrize(
    ("limit_ms", "gaps", "verdict"),
    [(20, {0.01: 500.0, math.inf: 500.0}, Verdict.PASS),
     (20, {0.01: 400.0, 0.025: 450.0, 0.05: 500.0, math.inf: 500.0}, Verdict.FAIL)],
    ids=["fast", "slow"],
)  # fmt: skip
def test_slow_tokens_fail_the_window(
    limit_ms: float, gaps: dict[float, float], verdict: Verdict
) -> None:
    gates = Gates(max_inter_token_p99_ms=limit_ms, min_requests=10)
    traffic = Traffic(50, 0, {0.1: 50, math.inf: 50}, inter_token=gaps)
    analysis = analyse(gates, traffic)
    assert analysis.verdict is verdict
    assert analysis.figures()["inter_token_p99_ms"] is not None
    if verdict is Verdict.FAIL:
        assert analysis.reasons == ("inter-token p99 47.5 ms > 20 ms",)
