"""End to end: ``ferryman capacity`` starts real replicas, loads them open-loop, stores the
result with the version, and a second run reads it back without measuring."""

from __future__ import annotations

import pytest

from ferryman.registry import Registry
from tests.capacity.conftest import Run

pytestmark = pytest.mark.e2e

TINY = (
    "--batch",
    "1",
    "--batch",
    "8",
    "--delay-ms",
    "2",
    "--threads",
    "1",
    "--start-qps",
    "20",
    "--max-qps",
    "80",
    "--step-s",
    "1",
    "--refine",
    "0",
    "--p99-ms",
    "500",
)


def test_capacity_measures_stores_and_is_read_back(
    run: Run, registry: Registry, affine: str
) -> None:
    code, out, err = run("capacity", f"{affine}@1", *TINY)
    assert code == 0, err
    assert "Capacity of affine v1 at p99 ≤ 500 ms" in out
    stored = registry.capacity.of(affine, 1)
    assert [(r.config.max_batch_size, r.config.max_delay_ms) for r in stored] == [(1, 0), (8, 2)]
    for result in stored:
        assert result.config.variant == "onnx"
        assert [s.target_qps for s in result.steps][:1] == [20]
        carried = [
            s.target_qps
            for s in result.steps
            if s.errors == 0
            and s.p99_ms is not None
            and s.p99_ms <= 500
            and s.achieved_qps >= 0.99 * s.target_qps
        ]
        assert result.max_qps == max(carried, default=0.0)
        assert result.rss_bytes is not None
        assert result.rss_bytes > 10e6
        assert result.cpu_pct is None or result.cpu_pct >= 0

    code, out, err = run("capacity", f"{affine}@1", *TINY)
    assert code == 0, err
    assert "(stored)" in err
    assert "(measured)" not in err
    again = registry.capacity.of(affine, 1)
    assert [r.measured_at for r in again] == [r.measured_at for r in stored]
