"""The recommendation as a pure function: known capacities and a catalogue give known answers."""

from __future__ import annotations

import pytest

from ferryman.capacity.catalogue import InstanceShape
from ferryman.capacity.recommend import autoscale_bounds, recommend
from ferryman.errors import InvalidInput
from ferryman.registry import CapacityResult, ServingConfig

GIB = 1024**3
SMALL = InstanceShape(name="small", vcpus=2, memory_gib=4, price_per_hour=0.10)
LARGE = InstanceShape(name="large", vcpus=8, memory_gib=16, price_per_hour=0.36)
SHAPES = (SMALL, LARGE)


def result(
    variant: str,
    batch: int,
    qps: float,
    cpu_pct: float = 90.0,
    rss_gib: float = 0.25,
    p99_target_ms: float = 50.0,
) -> CapacityResult:
    config = ServingConfig(
        variant=variant,
        max_batch_size=batch,
        max_delay_ms=0.0 if batch == 1 else 2.0,
        intra_op_threads=1,
    )
    return CapacityResult(
        config=config,
        p99_target_ms=p99_target_ms,
        max_qps=qps,
        p99_ms=20.0,
        cpu_pct=cpu_pct,
        rss_bytes=rss_gib * GIB,
        stop_reason="p99 over",
        cpu_count=2,
    )


def test_the_cheapest_configuration_and_shape_win_with_runners_up_explained() -> None:
    # 300 qps + 30% = 390 qps. int8 batch 8: 200 qps/replica -> 2 replicas; one core each,
    # so one small (2 vCPUs) holds both: 0.10/h. fp32 batch 8: 100 qps -> 4 replicas ->
    # 2 small = 0.20/h. int8 batch 1: 60 qps -> 7 replicas -> 1 large (8 cores) = 0.36/h,
    # or 4 small = 0.40/h.
    results = [result("onnx-fp32", 8, 100), result("onnx-int8", 8, 200), result("onnx-int8", 1, 60)]
    answer = recommend(results, SHAPES, qps=300, p99_target_ms=50, headroom=0.3)
    best = answer.best
    assert (best.config.variant, best.config.max_batch_size) == ("onnx-int8", 8)
    assert (best.replicas, best.instances, best.shape.name) == (2, 1, "small")
    assert best.cost_per_hour == pytest.approx(0.10)
    assert answer.needed_qps == pytest.approx(390)
    ups = [
        (
            u.candidate.config.variant,
            u.candidate.config.max_batch_size,
            u.candidate.shape.name,
            round(u.candidate.cost_per_hour, 4),
        )
        for u in answer.runners_up
    ]
    assert ups == [("onnx-fp32", 8, "small", 0.2), ("onnx-int8", 1, "large", 0.36)]
    assert answer.runners_up[0].why.startswith("costs 0.1/h more")


def test_memory_and_cores_limit_replicas_per_instance() -> None:
    # 2 cores per replica (150% CPU) and 3 GiB each: a small holds 1, a large 4 (by memory: 5).
    answer = recommend(
        [result("onnx", 8, 100, cpu_pct=150, rss_gib=3)],
        SHAPES,
        qps=350,
        p99_target_ms=50,
        headroom=0,
    )
    # 4 replicas: 4 small = 0.40/h against 1 large = 0.36/h.
    assert (answer.best.shape.name, answer.best.instances) == ("large", 1)
    assert answer.best.replicas_per_instance == 4
    assert answer.best.cores_per_replica == 2


def test_ties_go_to_fewer_replicas_then_more_spare_capacity() -> None:
    # Both need one small at 0.10/h; 150 qps/replica needs 1 replica, 80 qps needs 2.
    answer = recommend(
        [result("a", 8, 80), result("b", 8, 150)], [SMALL], qps=100, p99_target_ms=50, headroom=0.2
    )
    assert answer.best.config.variant == "b"
    assert answer.runners_up[0].why == "same cost, but 2 replicas instead of 1"


def test_results_at_a_looser_target_do_not_count_for_a_stricter_one() -> None:
    loose = result("onnx-int8", 8, 500, p99_target_ms=100)
    with pytest.raises(InvalidInput, match=r"p99 target of 50 ms.*measured at 100 ms"):
        recommend([loose], SHAPES, qps=10, p99_target_ms=50)
    strict = result("onnx-fp32", 8, 50, p99_target_ms=20)
    answer = recommend([loose, strict], SHAPES, qps=10, p99_target_ms=50)
    assert answer.best.config.variant == "onnx-fp32"


def test_an_impossible_target_names_the_closest_configuration() -> None:
    with pytest.raises(InvalidInput, match=r"no instance shape.*onnx batch≤8.*needs 1 core\(s\)"):
        recommend([result("onnx", 8, 100, rss_gib=64)], SHAPES, qps=10, p99_target_ms=50)
    with pytest.raises(InvalidInput, match=r"carried any rate.*p99 over"):
        recommend([result("onnx", 8, 0)], SHAPES, qps=10, p99_target_ms=50)
    with pytest.raises(InvalidInput, match="run `ferryman capacity` first"):
        recommend([], SHAPES, qps=10, p99_target_ms=50)


def test_autoscale_bounds_from_p95_and_peak() -> None:
    rates = [10.0] * 95 + [100.0] * 5  # p95 is 10 + a bit; the peak 100
    bounds = autoscale_bounds(rates, replica_qps=50, headroom=0.3)
    assert bounds.peak_qps == 100
    assert (bounds.min_replicas, bounds.max_replicas) == (1, 3)
    with pytest.raises(InvalidInput, match="no traffic history"):
        autoscale_bounds([], replica_qps=50)
