"""The in-memory history: bounded rings per variant, windows of points, stale variants go."""

from __future__ import annotations

import pytest

from ferryman.control.monitor.history import History, downsample
from ferryman.registry import MetricSample


def at(t: float, variant: str = "v1", **values: float) -> MetricSample:
    return MetricSample(time_s=t, endpoint="digits", variant=variant, values=values)


def test_a_ring_keeps_the_newest_samples_only() -> None:
    history = History(retention_s=60, resolution_s=10)  # 7 slots
    history.add(at(t, qps=float(t)) for t in range(0, 200, 10))
    points = history.points("digits", 0, ["qps"])[("v1", "qps")]
    assert [t for t, _ in points] == [130, 140, 150, 160, 170, 180, 190]
    assert [v for _, v in points] == [130, 140, 150, 160, 170, 180, 190]
    assert [t for t, _ in history.points("digits", 165, ["qps"])[("v1", "qps")]] == [170, 180, 190]
    assert history.latest()[("digits", "v1")].values == {"qps": 190}


def test_missing_values_are_gaps_and_other_endpoints_are_apart() -> None:
    history = History(retention_s=3600, resolution_s=10)
    history.add([at(0, qps=1, p99_ms=5), at(10, qps=2), at(20, qps=3, p99_ms=7)])
    history.add([MetricSample(time_s=20, endpoint="fraud", variant="v1", values={"qps": 9})])
    found = history.points("digits", 0, ["qps", "p99_ms"])
    assert found[("v1", "p99_ms")] == [(0, 5), (20, 7)]
    assert found[("v1", "qps")] == [(0, 1), (10, 2), (20, 3)]
    assert history.points("digits", 30, ["qps"]) == {}
    assert history.points("nothing", 0, ["qps"]) == {}


def test_variants_silent_for_the_whole_retention_are_forgotten() -> None:
    history = History(retention_s=60, resolution_s=10)
    history.add([at(0, "v1", qps=1), at(0, "v2", qps=1)])
    history.add([at(50, "v2", qps=1)])
    assert history.variants() == 2
    history.add([at(100, "v2", qps=1)])  # v1 has said nothing for 100 s > 60 s
    assert history.variants() == 1
    assert set(history.latest()) == {("digits", "v2")}


def test_memory_is_bounded_by_the_retention() -> None:
    history = History(retention_s=24 * 3600, resolution_s=10)
    history.add(at(float(t), qps=1.0) for t in range(0, 3 * 24 * 3600, 10))  # three days
    points = history.points("digits", 0, ["qps"])[("v1", "qps")]
    assert len(points) == 8641
    assert points[0][0] == 3 * 24 * 3600 - 10 - 24 * 3600


def test_downsampling_keeps_peaks_of_latency_and_means_of_rates() -> None:
    points = {
        ("v1", "p99_ms"): [(600.0, 10.0), (610.0, 90.0), (620.0, 20.0), (660.0, 5.0)],
        ("v1", "qps"): [(600.0, 10.0), (610.0, 20.0), (620.0, 30.0), (660.0, 40.0)],
        ("v1", "accuracy"): [],
    }
    thinned = downsample(points, 60.0)
    # buckets [600, 660) and [660, 720); each point at its bucket's newest sample
    assert thinned[("v1", "p99_ms")] == [(620.0, 90.0), (660.0, 5.0)]
    assert thinned[("v1", "qps")] == [(620.0, pytest.approx(20.0)), (660.0, 40.0)]
    assert thinned[("v1", "accuracy")] == []


def test_downsampled_buckets_are_aligned_so_later_reads_agree() -> None:
    series = [(float(t), float(t)) for t in range(0, 3600, 10)]
    early = downsample({("v1", "qps"): series[:200]}, 300.0)[("v1", "qps")]
    late = downsample({("v1", "qps"): series}, 300.0)[("v1", "qps")]
    assert len(late) == 12
    assert early[:-1] == late[: len(early) - 1]  # complete buckets never change
