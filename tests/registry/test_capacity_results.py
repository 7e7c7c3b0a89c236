"""Capacity results kept with a version: one row per configuration and target, replaced on
a new measurement, and refused for a version that does not exist."""

from __future__ import annotations

import pytest

from ferryman.errors import VersionNotFound
from ferryman.registry import CapacityResult, Registry, ServingConfig
from tests.capacity.conftest import affine, data_dir, registry  # noqa: F401 - fixtures

CONFIG = ServingConfig(variant="onnx", max_batch_size=8, max_delay_ms=2, intra_op_threads=1)


def measured(qps: float, target_ms: float = 50) -> CapacityResult:
    return CapacityResult(
        config=CONFIG, p99_target_ms=target_ms, max_qps=qps, stop_reason="p99 over", cpu_count=2
    )


def test_a_new_measurement_replaces_the_old_one_of_its_target(
    registry: Registry,  # noqa: F811
    affine: str,  # noqa: F811
) -> None:
    registry.capacity.put(affine, 1, measured(100), "a")
    registry.capacity.put(affine, 1, measured(40, target_ms=20), "a")
    registry.capacity.put(affine, 1, measured(120), "b")
    found = registry.capacity.of(affine, 1)
    assert [(r.p99_target_ms, r.max_qps, r.measured_by) for r in found] == [
        (20, 40, "a"),
        (50, 120, "b"),
    ]
    assert [r.max_qps for r in registry.capacity.of(affine, 1, 20)] == [40]
    with pytest.raises(VersionNotFound):
        registry.capacity.put(affine, 2, measured(1), "a")
